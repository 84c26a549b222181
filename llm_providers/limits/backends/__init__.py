"""Where admission counters live: the database (default) or Redis. One interface (base.py)."""

from django.conf import settings

from .base import Backend, Counters, Reservation

_backends: dict[str, Backend] = {}


def backend_name() -> str:
    name = (settings.LLM_LIMITS_BACKEND or "auto").strip().lower()
    if name == "auto":
        cache = settings.CACHES.get("default", {})
        location = cache.get("LOCATION") or ""
        if isinstance(location, list | tuple):
            location = location[0] if location else ""
        redis_backend = "redis" in str(cache.get("BACKEND", "")).lower()
        name = "redis" if redis_backend or str(location).startswith("redis") else "database"
    if name not in ("database", "redis"):
        raise ValueError(f"LLM_LIMITS_BACKEND must be auto, database or redis, not {name!r}.")
    return name


def get_backend() -> Backend:
    name = backend_name()
    backend = _backends.get(name)
    if backend is None:
        if name == "redis":
            from .redis import RedisBackend

            backend = RedisBackend()
        else:
            from .database import DatabaseBackend

            backend = DatabaseBackend()
        _backends[name] = backend
    return backend


def reset() -> None:
    """Forget the backend objects (tests that switch backends or servers)."""
    _backends.clear()


__all__ = ["Backend", "Counters", "Reservation", "backend_name", "get_backend", "reset"]
