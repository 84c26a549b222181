"""LOG_FORMAT=json: one JSON object per line, for log shippers (SPEC §15).

A dozen lines rather than python-json-logger: the fields are fixed (time, level, logger,
message, request id, exception), the redaction filter has already formatted and cleaned
the message before any formatter runs, and the runtime gains no dependency for it.
Imports nothing from Django (LOGGING loads it before the apps).
"""

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None,
        }
        # The filter's "-" (no request) is null here.
        request_id = getattr(record, "request_id", None)
        if request_id and request_id != "-":
            entry["request_id"] = request_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)
