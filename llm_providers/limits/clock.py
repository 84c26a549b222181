"""The admission clock: Unix time, replaceable in tests (windows and holds depend on it)."""

import time

_now = time.time


def now() -> float:
    return _now()


def set_clock(function=None) -> None:
    """Use `function()` as the clock (None: the real one). Tests only."""
    global _now
    _now = function or time.time
