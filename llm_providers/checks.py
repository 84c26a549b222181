"""System checks of the llm_providers settings, run by `manage.py check` and at start-up.

A wrong setting is reported here, naming it, instead of failing deep inside a call.
(FIELD_ENCRYPTION_KEY, which the provider keys need, is checked in tenants/checks.py.)

    llm_providers.E001  LLM_BASE_URL_ALLOWLIST: not a list of IP addresses/networks
    llm_providers.E002  a number setting (timeouts, retries, …) of the wrong type or range
    llm_providers.E003  a boolean setting that is not a boolean
    llm_providers.E004  LLM_VALIDATION_MODE not models, ping or off
    llm_providers.E005  LLM_DEFAULT_PROVIDER not a known provider
    llm_providers.E006  a string setting (keys, base URLs, the default model) not a string
    llm_providers.E007  LLM_TEST_THROTTLE_RATE not a DRF rate ("10/min")
"""

from numbers import Real

from django.conf import settings
from django.core.checks import Error, register

from .configs.urlsafety import InvalidAllowlistEntry, parse_allowlist_entry
from .providers.registry import ADAPTERS
from .validation.runner import MODES as VALIDATION_MODES

# name → (minimum, whether the minimum itself is allowed, whether None is allowed, integer)
NUMBERS = {
    "LLM_REQUEST_TIMEOUT": (0, False, False, False),
    "LLM_REQUEST_DEADLINE": (0, False, True, False),
    "LLM_VALIDATION_TIMEOUT": (0, False, False, False),
    "LLM_MAX_RETRIES": (0, True, False, True),
    "LLM_GATEWAY_CACHE_SECONDS": (0, True, False, False),
    "LLM_USAGE_RETENTION_DAYS": (1, True, True, True),
    "LLM_HEALTHZ_INTERVAL_SECONDS": (0, False, False, False),
    "LLM_HEALTHZ_TIMEOUT_SECONDS": (0, False, False, False),
}
BOOLEANS = ("LLM_VALIDATE_ON_STARTUP", "LLM_LOG_PROMPTS", "LLM_USAGE_ASYNC_COMMIT")
STRINGS = ("LLM_DEFAULT_PROVIDER", "LLM_DEFAULT_MODEL", "LLM_DEFAULT_BASE_URL")
THROTTLE_PERIODS = ("s", "m", "h", "d")


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


def number_problem(value, minimum, inclusive, optional, integer) -> str | None:
    """What is wrong with a number setting's value (None: nothing); NUMBERS' rule shape."""
    if value is None:
        return None if optional else "must be set"
    if isinstance(value, bool) or not isinstance(value, Real):
        return "must be an integer" if integer else "must be a number"
    if integer and int(value) != value:
        return "must be an integer"
    if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
        return "must be a finite number"
    if value < minimum or (value == minimum and not inclusive):
        comparison = "at least" if inclusive else "greater than"
        return f"must be {comparison} {minimum}"
    return None


@register()
def check_number_settings(app_configs=None, **kwargs) -> list[Error]:
    """Timeouts > 0, retries ≥ 0, the cache time ≥ 0, retention days ≥ 1 (or unset)."""
    errors = []
    for name, rule in NUMBERS.items():
        value = getattr(settings, name)
        problem = number_problem(value, *rule)
        if problem:
            errors.append(
                Error(
                    f"{name} {problem} (it is {value!r}).",
                    hint="Set it in the environment or settings (README, Configuration).",
                    id="llm_providers.E002",
                )
            )
    return errors


@register()
def check_boolean_settings(app_configs=None, **kwargs) -> list[Error]:
    return [
        Error(f"{name} must be true or false (it is {value!r}).", id="llm_providers.E003")
        for name in BOOLEANS
        if not isinstance(value := getattr(settings, name), bool)
    ]


@register()
def check_validation_mode(app_configs=None, **kwargs) -> list[Error]:
    mode = settings.LLM_VALIDATION_MODE
    if isinstance(mode, str) and mode.strip().lower() in VALIDATION_MODES:
        return []
    return [
        Error(
            f"LLM_VALIDATION_MODE must be one of {', '.join(VALIDATION_MODES)} (it is {mode!r}).",
            hint="models: the free model-list call; ping: a 1-token completion; off: none.",
            id="llm_providers.E004",
        )
    ]


@register()
def check_string_settings(app_configs=None, **kwargs) -> list[Error]:
    """The environment fallback's settings, and every adapter's key and base-URL setting."""
    names = list(STRINGS)
    for adapter in ADAPTERS.values():
        names += [n for n in (adapter.key_setting, adapter.base_url_setting) if n]
    errors = []
    for name in dict.fromkeys(names):
        # Absent is unset (a host project defines only the providers it uses).
        value = getattr(settings, name, "")
        if not isinstance(value, str):
            errors.append(
                Error(
                    f"{name} must be a string (it is {type(value).__name__}); empty: unset.",
                    id="llm_providers.E006",
                )
            )
    return errors


@register()
def check_default_provider(app_configs=None, **kwargs) -> list[Error]:
    provider = settings.LLM_DEFAULT_PROVIDER
    if not isinstance(provider, str):
        return []  # check_string_settings reports it
    name = provider.strip().lower()
    if not name or name in ADAPTERS:
        return []
    return [
        Error(
            f"LLM_DEFAULT_PROVIDER names an unknown provider ({provider!r}).",
            hint=f"Use one of {', '.join(ADAPTERS)}, or leave it empty (no environment fallback).",
            id="llm_providers.E005",
        )
    ]


@register()
def check_test_throttle_rate(app_configs=None, **kwargs) -> list[Error]:
    rate = settings.LLM_TEST_THROTTLE_RATE
    if rate is None:
        return []  # DRF: no throttle
    number, _, period = rate.partition("/") if isinstance(rate, str) else ("", "", "")
    if number.strip().isdigit() and period.strip()[:1] in THROTTLE_PERIODS and period.strip():
        return []
    return [
        Error(
            f"LLM_TEST_THROTTLE_RATE must be a rate like '10/min' (it is {rate!r}).",
            hint="A number of requests, '/', and a period: s, m, h or d (sec, min, hour, day).",
            id="llm_providers.E007",
        )
    ]
