"""The serving settings' ranges, checked when the served application is built.

django-environ already refuses a value of the wrong type (naming the variable); these are
the ranges: a pool of no threads, an empty body limit or a body timeout of zero (or NaN)
would otherwise fail later and deep inside (a bare ValueError from the thread pool, every
request refused) instead of at start-up, naming the setting. The rule is the one
llm_providers' number settings are checked with (`llm_providers.checks.number_problem`).
"""

from django.core.exceptions import ImproperlyConfigured

from llm_providers.checks import number_problem

# name → (minimum, whether the minimum itself is allowed, whether None is allowed, integer)
RANGES = {
    "WEB_THREADS": (1, True, False, True),
    "SERVER_MAX_BODY_BYTES": (1, True, False, True),
    "SERVER_BODY_TIMEOUT_SECONDS": (0, False, False, False),
    "SERVER_HEALTH_STALL_SECONDS": (0, False, False, False),
}


def check(settings) -> None:
    """ImproperlyConfigured naming every serving setting out of its range."""
    problems = []
    for name, rule in RANGES.items():
        value = getattr(settings, name)
        problem = number_problem(value, *rule)
        if problem:
            problems.append(f"{name} {problem} (got {value!r}).")
    if problems:
        raise ImproperlyConfigured(" ".join(problems))
