"""What a tenant may put in a config's `metadata`, checked when the config is saved.

`clean_provider_config` (the API, the admin form and the service) calls
`metadata_problems`; the same rules apply again where the values are used (prices in
pricing.py, headers in providers/base.py), so that rows saved before a rule existed are
harmless too.
"""

from collections.abc import Mapping

from ..providers.base import MAX_HEADER_VALUE_LENGTH, header_problem
from ..providers.registry import UnknownProvider, get_adapter
from ..usage.pricing import validate_pricing


def metadata_problems(metadata: Mapping, provider: str = "") -> list[str]:
    """Messages for every problem in `metadata` (empty when it may be saved)."""
    problems = []
    if "pricing" in metadata:
        try:
            validate_pricing(metadata["pricing"])
        except ValueError as exc:
            problems.append(f"pricing: {exc}")
    if "headers" in metadata:
        try:
            auth_headers = get_adapter(provider).auth_header_names
        except UnknownProvider:  # reported on its own field
            auth_headers = ()
        problems += [f"headers: {p}" for p in _header_problems(metadata["headers"], auth_headers)]
    return problems


def _header_problems(headers, auth_headers) -> list[str]:
    if not isinstance(headers, Mapping):
        return ["must be an object of header name → value."]
    problems = []
    for name, value in headers.items():
        problem = header_problem(str(name), auth_headers)
        if problem:
            problems.append(problem)
        elif not isinstance(value, str) or len(value) > MAX_HEADER_VALUE_LENGTH:
            problems.append(
                f"the value of {name} must be a string of at most "
                f"{MAX_HEADER_VALUE_LENGTH} characters."
            )
        elif not value.isprintable():
            problems.append(f"the value of {name} must not contain control characters.")
    return problems
