"""The latest full validation, shared through the cache, as counts for /healthz."""

import logging

from django.core.cache import cache

from .report import ValidationReport

logger = logging.getLogger("llm_providers.validation")

CACHE_KEY = "llm_providers:validation:latest"


def latest_validation() -> dict | None:
    """The latest full validation as counts (None when none ran or the cache is down)."""
    try:
        return cache.get(CACHE_KEY)
    except Exception:  # a cache outage must not take /healthz down with it
        logger.warning("could not read the validation state from the cache", exc_info=False)
        return None


def record_in_cache(report: ValidationReport) -> None:
    try:
        cache.set(CACHE_KEY, report.health_entry(), timeout=None)
    except Exception:
        logger.warning("could not store the validation state in the cache", exc_info=False)
