"""The REST API's JSON parser."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with absurdly nested documents a parse error instead of a 500.

    Python's decoder raises RecursionError (not a ValueError) past ~1000 levels, which a
    few hundred kilobytes of brackets reach well inside API_MAX_BODY_BYTES.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
