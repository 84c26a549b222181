"""Checking providers (SPEC §8): is each active config reachable, with a working key?

Every provider is checked concurrently, each with its own timeout, so validating many
costs about as long as the slowest one. Outcomes go onto the configs (one bulk update)
and, for a full run, into one shared cache entry that `/healthz` reads as counts.
"""

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures

from django.conf import settings
from django.db import connections
from django.utils import timezone

from tenants import get_tenant_model

from ..models import Endpoint, ProviderConfig
from .health import record_in_cache
from .report import ProviderCheck, ValidationReport, ValidationTarget, check_status

# The package's name: operators and tests filter on it.
logger = logging.getLogger("llm_providers.validation")

MODES = ("models", "ping", "off")  # LLM_VALIDATION_MODE (checked at start-up: checks.py)
MAX_WORKERS = 16
# How long the run waits beyond the per-provider timeout before it stops waiting for a
# check whose own timeout did not fire (a provider that trickles bytes, say).
GRACE_SECONDS = 2.0


def _error_dict(error) -> dict:
    if error is None:
        return {
            "type": "bad_response",
            "message": "The check failed without an error.",
            "status_code": None,
        }
    if isinstance(error, dict):
        return {k: error.get(k) for k in ("type", "message", "status_code")}
    return error.as_dict()


def model_listed(model: str, models: list[str]) -> bool:
    """Whether `model` is one of the provider's `models`, or a name they are versions of
    (OpenAI's and Anthropic's lists hold dated snapshots: `gpt-4o-mini-2024-07-18` is a
    `gpt-4o-mini`; `claude-3-7-sonnet-latest` names the newest `claude-3-7-sonnet-…`)."""
    stem = model.removesuffix("-latest")
    return any(name == model or name.startswith(stem + "-") for name in models)


def _unlisted_model(resolved, models: list[str]) -> dict | None:
    """A models-mode check's error when the config's default model is not offered: the key
    works, but every call of that model would fail (a typo such as `gpt-4o-mnii`)."""
    adapter = resolved.adapter
    if not models or not resolved.model or adapter is None or not adapter.lists_every_model:
        return None
    if model_listed(resolved.model, models):
        return None
    return {
        "type": "not_found",
        "message": f"The provider answered, but its model list has no {resolved.model!r}: "
        "check the config's default model.",
        "status_code": None,
    }


class LLMStartupValidator:
    """Checks providers concurrently; `mode` is `models` (free model list) or `ping`."""

    def __init__(self, *, mode=None, timeout=None, endpoint=Endpoint.VALIDATION, max_workers=None):
        mode = (mode or settings.LLM_VALIDATION_MODE or "models").strip().lower()
        if mode not in MODES:
            raise ValueError(f"Unknown validation mode {mode!r}; expected one of {MODES}.")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds.")
        self.mode = mode
        self.timeout = float(timeout or settings.LLM_VALIDATION_TIMEOUT)
        self.endpoint = endpoint
        self.max_workers = max_workers or MAX_WORKERS

    # -- what to check -----------------------------------------------------------------
    def targets(self, *, tenant_id=None, include_environment=True) -> list[ValidationTarget]:
        """Every active config of an active tenant (one query), plus the environment fallback.

        A disabled tenant's config serves no calls, so it is not a provider to report on.
        """
        configs = (
            ProviderConfig.objects.active()
            .filter(tenant__is_active=True)
            .select_related("tenant")
            .order_by("tenant_id")
        )
        if tenant_id is not None:
            configs = configs.for_tenant(tenant_id)
        targets = self.targets_for_configs(configs)
        if include_environment and tenant_id is None:
            env_target = environment_target()
            if env_target is not None:
                targets.append(env_target)
        return targets

    @staticmethod
    def targets_for_configs(configs) -> list[ValidationTarget]:
        return [
            ValidationTarget(
                provider=c.provider, model=c.default_model, tenant_id=c.tenant_id, config=c
            )
            for c in configs
        ]

    # -- checking ----------------------------------------------------------------------
    def run(self, targets: list[ValidationTarget]) -> ValidationReport:
        """Check all targets concurrently; returns once the slowest has answered or timed out."""
        report = ValidationReport(mode=self.mode, started_at=timezone.now())
        started = time.monotonic()
        if self.mode == "off" or not targets:
            return report
        if len(targets) == 1:
            # One check needs no pool; it also keeps the caller's database connection.
            report.checks = [self.check(targets[0])]
        else:
            report.checks = self._run_concurrently(targets)
        report.duration_ms = round((time.monotonic() - started) * 1000)
        return report

    def _run_concurrently(self, targets):
        workers = min(self.max_workers, len(targets))
        rounds = math.ceil(len(targets) / workers)
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-validate")
        try:
            futures = [executor.submit(self._check_in_thread, t) for t in targets]
            wait_for_futures(futures, timeout=rounds * self.timeout + GRACE_SECONDS)
            checks = []
            for target, future in zip(targets, futures, strict=True):
                if future.done() and future.exception() is None:
                    checks.append(future.result())
                else:
                    checks.append(self._timed_out(target))
            return checks
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def _check_in_thread(self, target):
        try:
            return self.check(target)
        finally:
            # Worker threads have their own connections (the service may log usage).
            connections.close_all()

    def check(self, target: ValidationTarget) -> ProviderCheck:
        """Check one target; never raises for provider trouble."""
        started = time.monotonic()
        resolved = target.resolve()
        if not resolved.usable:
            # The rule calls use (engine/resolution.py), and never sent anywhere: an
            # undecryptable key must not reach a provider.
            return self._result(target, started, success=False, error=resolved.error.as_dict())
        try:
            # Imported late: LLMService pulls in the adapters; ready() stays import-light.
            from ..engine.options import CallOptions
            from ..engine.service import LLMService

            service = LLMService(target.tenant_id, resolved=resolved)
            # The check's own timeout bounds the call (read timeout and overall deadline).
            options = CallOptions(timeout=self.timeout, deadline=self.timeout)
            if self.mode == "ping":
                outcome = service.generate_completion(
                    "ping",
                    max_tokens=1,
                    endpoint=self.endpoint,
                    metadata={"check": self.endpoint},
                    options=options,
                )
            else:
                # The free check is not a billable call: its outcome goes on the config,
                # not into the tenant's usage log.
                outcome = service.list_models(options=options, record_usage=False)
        except Exception as exc:
            # A bug in one provider's path must not stop the others; the exception's text
            # is left out because it could quote a request.
            logger.error(
                "LLM provider check crashed: provider=%s tenant=%s error=%s",
                target.provider,
                target.tenant_id or "-",
                type(exc).__name__,
            )
            error = {
                "type": "bad_response",
                "message": f"The check failed unexpectedly ({type(exc).__name__}).",
                "status_code": None,
            }
            return self._result(target, started, success=False, error=error)
        error = None if outcome.success else _error_dict(outcome.error)
        if outcome.success and self.mode == "models":
            error = _unlisted_model(resolved, outcome.models)
        return self._result(
            target,
            started,
            success=error is None,
            error=error,
            latency_ms=getattr(outcome, "latency_ms", None),
        )

    def _result(self, target, started, *, success, error=None, latency_ms=None):
        if latency_ms is None:
            latency_ms = round((time.monotonic() - started) * 1000)
        status = check_status(success=success, error=error)
        return ProviderCheck(
            source=target.source,
            provider=target.provider,
            model=target.model,
            tenant_id=target.tenant_id,
            config_id=str(target.config.pk) if target.config is not None else None,
            status=status,
            latency_ms=int(latency_ms),
            checked_at=timezone.now(),
            error=error,
        )

    def _timed_out(self, target):
        error = {
            "type": "timeout",
            "message": f"No answer within {self.timeout:g} s.",
            "status_code": None,
        }
        return self._result(
            target,
            time.monotonic(),
            success=False,
            error=error,
            latency_ms=round(self.timeout * 1000),
        )

    # -- recording ---------------------------------------------------------------------
    @staticmethod
    def store(report: ValidationReport, targets: list[ValidationTarget]) -> None:
        """Put each config's outcome on it, in one bulk update."""
        by_id = {str(t.config.pk): t.config for t in targets if t.config is not None}
        changed = []
        for check in report.checks:
            config = by_id.get(check.config_id)
            if config is None:
                continue
            config.last_tested = check.checked_at
            config.test_latency_ms = check.latency_ms
            config.last_test_success = check.usable
            config.last_error = check.reason[:2000]
            config.last_validation = ProviderConfig.check_outcome(
                at=check.checked_at,
                success=check.usable,
                latency_ms=check.latency_ms,
                error=config.last_error,
            )
            changed.append(config)
        if changed:
            ProviderConfig.objects.bulk_update(
                changed,
                [
                    "last_tested",
                    "test_latency_ms",
                    "last_test_success",
                    "last_error",
                    "last_validation",
                ],
            )

    @staticmethod
    def log(report: ValidationReport) -> None:
        """One WARNING line per provider that is not usable (never a key)."""
        for check in report.checks:
            if check.usable:
                continue
            logger.warning(
                "LLM provider %s: provider=%s tenant=%s config=%s model=%s reason=%s",
                check.status,
                check.provider,
                check.tenant_id or "(environment)",
                check.config_id or "-",
                check.model or "-",
                check.reason,
            )
        if report.checks:
            logger.info(
                "LLM provider validation (%s) finished in %d ms: %s",
                report.mode,
                report.duration_ms,
                report.summary,
            )


def environment_target() -> ValidationTarget | None:
    """The environment fallback (SPEC §4) as a target, when some tenant relies on it.

    It is checked through one such tenant (an active tenant without an active config),
    exactly as that tenant's calls would go; with no such tenant it serves nobody.
    """
    from ..engine.resolution import environment_provider

    provider = environment_provider()
    if not provider:
        return None
    tenant_id = (
        get_tenant_model()
        .objects.filter(is_active=True)
        .exclude(provider_configs__is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if tenant_id is None:
        return None
    return ValidationTarget(
        provider=provider, model=settings.LLM_DEFAULT_MODEL or "", tenant_id=tenant_id
    )


def validate_provider_configs(configs, *, mode=None, timeout=None, endpoint=Endpoint.VALIDATION):
    """Check the given configs (active or not) and store their outcomes; for the admin."""
    validator = LLMStartupValidator(mode=mode, timeout=timeout, endpoint=endpoint)
    if validator.mode == "off":
        validator.mode = "models"
    targets = validator.targets_for_configs(configs)
    report = validator.run(targets)
    validator.store(report, targets)
    validator.log(report)
    return report


def run_llm_startup_validation(*, tenant_id=None, mode=None, timeout=None) -> ValidationReport:
    """Validate every active config and the environment fallback (or one tenant's config).

    Outcomes are stored on the configs; a full run (no tenant) also becomes the shared
    state that /healthz reports.
    """
    validator = LLMStartupValidator(mode=mode, timeout=timeout)
    if validator.mode == "off":
        report = validator.run([])
    else:
        targets = validator.targets(tenant_id=tenant_id)
        report = validator.run(targets)
        validator.store(report, targets)
        validator.log(report)
    if tenant_id is None:
        record_in_cache(report)
    return report
