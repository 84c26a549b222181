"""The serving settings' ranges, checked when the served application is built.

django-environ already refuses a value of the wrong type (naming the variable); these are
the ranges: a pool of no threads, an empty body limit or a body timeout of zero would
otherwise fail later and deep inside (a bare ValueError from the thread pool, every
request refused) instead of at start-up, naming the setting.
"""

from numbers import Real

from django.core.exceptions import ImproperlyConfigured

# name → (smallest allowed value, integer)
RANGES = {
    "WEB_THREADS": (1, True),
    "SERVER_MAX_BODY_BYTES": (1, True),
    "SERVER_BODY_TIMEOUT_SECONDS": (0.001, False),
}


def check(settings) -> None:
    """ImproperlyConfigured naming every serving setting out of its range."""
    problems = []
    for name, (minimum, integer) in RANGES.items():
        value = getattr(settings, name)
        kind = int if integer else Real
        if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
            what = "an integer" if integer else "a number"
            problems.append(f"{name} must be {what} of at least {minimum} (got {value!r}).")
    if problems:
        raise ImproperlyConfigured(" ".join(problems))
