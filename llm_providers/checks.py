"""System checks of the llm_providers settings, run by `manage.py check` and at start-up.

A wrong setting is reported here, naming it, instead of failing deep inside a call.
"""

from django.conf import settings
from django.core.checks import Error, register

from .configs.urlsafety import InvalidAllowlistEntry, parse_allowlist_entry


@register()
def check_base_url_allowlist(app_configs=None, **kwargs) -> list[Error]:
    """Every LLM_BASE_URL_ALLOWLIST entry is an IP address or network."""
    entries = settings.LLM_BASE_URL_ALLOWLIST
    if isinstance(entries, str) or not isinstance(entries, list | tuple):
        return [
            Error(
                "LLM_BASE_URL_ALLOWLIST must be a list of IP networks.",
                id="llm_providers.E001",
            )
        ]
    errors = []
    for entry in entries:
        if not str(entry).strip():
            continue
        try:
            parse_allowlist_entry(str(entry))
        except InvalidAllowlistEntry as exc:
            errors.append(
                Error(
                    f"LLM_BASE_URL_ALLOWLIST: {exc}",
                    hint="Name addresses or CIDR networks; such an entry allows nothing.",
                    id="llm_providers.E001",
                )
            )
    return errors
