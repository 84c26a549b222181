"""The connection test (`POST /api/llm/test` and the admin's "Test connection").

One real, minimal completion, its outcome stored on the config.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import connections
from django.utils import timezone

from ..engine.options import CallOptions
from ..engine.service import LLMService
from ..errors import OWN_LIMIT_ERRORS, ProviderError
from ..models import Endpoint, ProviderConfig
from . import services
from .encryption import UndecryptableKeyError

DEFAULT_TEST_PROMPT = "Reply with the single word OK."
# Enough for a one-word answer; a test must never become a money pump.
TEST_MAX_TOKENS = 8
# A test answers how the provider is doing now: one attempt, and a web request that is
# not held for minutes (the config's own smaller deadline still applies).
TEST_MAX_RETRIES = 0
TEST_DEADLINE_SECONDS = 30.0
TEST_OPTIONS = CallOptions(deadline=TEST_DEADLINE_SECONDS, max_retries=TEST_MAX_RETRIES)
# Several configs (the admin action) are tested at once, so the page waits for the slowest.
MAX_WORKERS = 16


@dataclass(frozen=True)
class ConnectionTestOutcome:
    success: bool
    provider: str | None
    model: str | None
    error: dict | None
    latency_ms: int | None
    # Switchyard's own limits refused the test before any provider call: not an outcome
    # of the config (nothing is stored on it); the view answers 429.
    refused: ProviderError | None = None

    def as_dict(self) -> dict:
        return {
            "success": self.success,
            "provider": self.provider,
            "model": self.model,
            "error": self.error,
            "latency_ms": self.latency_ms,
        }


def provider_config_test(
    *, tenant, config: ProviderConfig | None = None, prompt: str = DEFAULT_TEST_PROMPT
) -> ConnectionTestOutcome:
    """Test `config` (default: the tenant's active config, else the environment fallback).

    The call goes through LLMService, so it is logged with endpoint=test like any other;
    the outcome is stored on the config that was used. Provider trouble is an outcome with
    success=False, never an exception.
    """
    if config is None:
        config = services.llm_provider_service.get_active_config(tenant.pk)
    # Limits apply to a test; fallbacks do not: a test tests one config.
    llm = LLMService(tenant.pk, config=config, fallbacks=False)
    result = llm.generate_completion(
        prompt, max_tokens=TEST_MAX_TOKENS, endpoint=Endpoint.TEST, options=TEST_OPTIONS
    )
    if result.error is not None and result.error.type in OWN_LIMIT_ERRORS:
        return ConnectionTestOutcome(
            success=False,
            provider=result.provider or None,
            model=result.model or None,
            error=result.error.as_dict(),
            latency_ms=result.latency_ms,
            refused=result.error,
        )
    error = _redacted_error(result.error, config)
    if config is not None:
        provider_config_record_test(
            config=config,
            success=bool(result.success),
            latency_ms=result.latency_ms,
            error_message=error["message"] if error else "",
        )
    return ConnectionTestOutcome(
        success=bool(result.success),
        provider=result.provider or (config.provider if config else None),
        model=result.model or (config.default_model if config else None),
        error=error,
        latency_ms=result.latency_ms,
    )


def provider_configs_test(*, configs: list[ProviderConfig]) -> list[ConnectionTestOutcome]:
    """`provider_config_test` for each config (with its tenant), concurrently, in order."""
    if len(configs) <= 1:
        # One test needs no pool; it also keeps the caller's database connection.
        return [provider_config_test(tenant=c.tenant, config=c) for c in configs]
    with ThreadPoolExecutor(
        max_workers=min(MAX_WORKERS, len(configs)), thread_name_prefix="llm-test"
    ) as executor:
        return list(executor.map(_test_in_thread, configs))


def _test_in_thread(config: ProviderConfig) -> ConnectionTestOutcome:
    try:
        return provider_config_test(tenant=config.tenant, config=config)
    finally:
        connections.close_all()  # worker threads have their own connections


def provider_config_record_test(
    *, config: ProviderConfig, success: bool, latency_ms: int | None, error_message: str = ""
) -> None:
    """Store a test's outcome on the config without touching any other column."""
    now = timezone.now()
    ProviderConfig.objects.filter(pk=config.pk).update(
        last_tested=now,
        test_latency_ms=latency_ms,
        last_test_success=success,
        last_error="" if success else error_message,
        last_connection_test=ProviderConfig.check_outcome(
            at=now, success=success, latency_ms=latency_ms, error=error_message
        ),
    )


def _redacted_error(error, config: ProviderConfig | None) -> dict | None:
    """The normalised error as a dict; the config's key masked should a provider echo it."""
    if error is None:
        return None
    data = error.as_dict() if hasattr(error, "as_dict") else dict(error)
    key = None
    if config is not None:
        try:
            key = services.decrypted_api_key(config)
        except UndecryptableKeyError:
            key = None
    if key and isinstance(data.get("message"), str) and key in data["message"]:
        data["message"] = data["message"].replace(key, "****")
    return data
