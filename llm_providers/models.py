import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from tenants.models import TenantScopedQuerySet

from .configs.encryption import FailClosedEncryptedCharField, UndecryptableSecret


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GROQ = "groq", "Groq"
    LOCAL = "local", "Local (OpenAI-compatible)"
    GEMINI = "gemini", "Google Gemini"
    MISTRAL = "mistral", "Mistral"
    AZURE = "azure", "Azure OpenAI"
    OPENROUTER = "openrouter", "OpenRouter"
    DEEPSEEK = "deepseek", "DeepSeek"
    TOGETHER = "together", "Together AI"
    FIREWORKS = "fireworks", "Fireworks AI"
    XAI = "xai", "xAI"
    OLLAMA = "ollama", "Ollama"
    VLLM = "vllm", "vLLM"


class Endpoint(models.TextChoices):
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"
    TEST = "test"
    VALIDATION = "validation"
    COUNT_TOKENS = "count_tokens"  # /v1/messages/count_tokens: free, no tokens spent


class KeyStatus(models.TextChoices):
    OK = "ok"
    MISSING = "missing"
    UNDECRYPTABLE = "undecryptable"


class ProviderConfigQuerySet(TenantScopedQuerySet):
    def active(self):
        return self.filter(is_active=True)


class ProviderConfig(models.Model):
    """One tenant's settings for one provider; the key is encrypted at rest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        settings.SWITCHYARD_TENANT_MODEL, on_delete=models.CASCADE, related_name="provider_configs"
    )
    provider = models.CharField(max_length=20, choices=Provider.choices)
    api_key_encrypted = FailClosedEncryptedCharField(blank=True, default="")
    api_key_last4 = models.CharField(max_length=4, blank=True, default="")
    base_url = models.URLField(max_length=500, blank=True, default="")
    default_model = models.CharField(max_length=200)
    is_active = models.BooleanField(default=False)
    last_tested = models.DateTimeField(null=True, blank=True)
    test_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_test_success = models.BooleanField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # The four fields above hold the latest check of either kind (SPEC §3). Each kind's own
    # latest outcome is kept here too, so that a later "Validate" (a free model list) can
    # never hide a failed "Test connection" (a real completion), or the other way round:
    # {"at": ISO time, "success": bool, "latency_ms": int | None, "error": str}.
    last_connection_test = models.JSONField(null=True, blank=True, editable=False)
    last_validation = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    metadata = models.JSONField(default=dict, blank=True)
    # SPEC §14: null keeps the config out of the tenant's fallback chain; the active config
    # is tried first, then the chain in ascending order.
    fallback_order = models.PositiveSmallIntegerField(null=True, blank=True)

    objects = ProviderConfigQuerySet.as_manager()

    class Meta:
        db_table = "llm_provider_configs"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(is_active=True),
                name="llm_provider_configs_one_active_per_tenant",
            ),
            models.CheckConstraint(
                condition=Q(provider__in=Provider.values),
                name="llm_provider_configs_known_provider",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="llm_cfg_tenant_created")]

    def __str__(self):
        return f"{self.tenant_id}/{self.provider}/{self.default_model}"

    @property
    def key_status(self) -> str:
        if isinstance(self.api_key_encrypted, UndecryptableSecret):
            return KeyStatus.UNDECRYPTABLE
        if not self.api_key_encrypted:
            return KeyStatus.MISSING
        return KeyStatus.OK

    @property
    def has_undecryptable_key(self) -> bool:
        return self.key_status == KeyStatus.UNDECRYPTABLE

    @property
    def api_key_masked(self) -> str:
        return f"****{self.api_key_last4}" if self.api_key_encrypted else ""

    @staticmethod
    def check_outcome(*, at, success: bool, latency_ms, error: str = "") -> dict:
        """The value of `last_connection_test` / `last_validation`."""
        return {
            "at": at.isoformat(),
            "success": bool(success),
            "latency_ms": latency_ms,
            "error": "" if success else error,
        }

    def set_api_key(self, api_key: str) -> None:
        self.api_key_encrypted = api_key or ""
        self.api_key_last4 = key_hint(api_key or "")


def key_hint(api_key: str) -> str:
    """The end of a key shown to tell keys apart: 4 characters of a key of 16 or more, 2 of
    one of 8 to 15, none of a shorter one (4 of 7 characters would be most of the key)."""
    if len(api_key) >= 16:
        return api_key[-4:]
    if len(api_key) >= 8:
        return api_key[-2:]
    return ""


class UsageLogQuerySet(TenantScopedQuerySet):
    pass


class UsageLog(models.Model):
    """One row per LLM call (retries included), successful or not."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(
        settings.SWITCHYARD_TENANT_MODEL, on_delete=models.CASCADE, related_name="usage_logs"
    )
    provider_config = models.ForeignKey(
        ProviderConfig,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="usage_logs",
    )
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=200, blank=True, default="")
    endpoint = models.CharField(
        max_length=20, choices=Endpoint.choices, default=Endpoint.COMPLETION
    )
    tokens_used = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # Parts of prompt_tokens (read from / written to the provider's prompt cache) and of
    # completion_tokens (reasoning), as the provider reported them; 0 when it reports none.
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    success = models.BooleanField()
    error_type = models.CharField(max_length=40, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    metadata = models.JSONField(default=dict, blank=True)

    objects = UsageLogQuerySet.as_manager()

    class Meta:
        db_table = "llm_usage_logs"
        ordering = ["-created_at", "-id"]
        indexes = [
            # Tenant and time first (the usage endpoints' filter), then every column the
            # stats aggregate: the stats query becomes an index-only scan (bench/README.md).
            models.Index(
                fields=[
                    "tenant",
                    "created_at",
                    "provider",
                    "model",
                    "endpoint",
                    "success",
                    "tokens_used",
                    "prompt_tokens",
                    "completion_tokens",
                    "cost_usd",
                    "latency_ms",
                ],
                name="llm_usage_tenant_stats",
            )
        ]

    def __str__(self):
        return f"{self.tenant_id} {self.provider}/{self.model} {self.endpoint} #{self.pk}"


class UsageDailyRollupQuerySet(TenantScopedQuerySet):
    pass


class UsageDailyRollup(models.Model):
    """Usage of one tenant on one closed UTC day, per provider/model/endpoint/outcome.

    Filled by `services.usage_rollup_days` from `llm_usage_logs`; the stats selector reads
    whole rolled-up days from here and everything else from the usage rows. Only additive
    metrics are kept (sums, counts, a maximum), so any set of days and groups can be
    combined exactly. `error_type` is part of the key because the stats endpoint can filter
    on it; `provider_config` is not (that filter reads the usage rows).
    """

    id = models.BigAutoField(primary_key=True)
    # Deleting a tenant deletes its usage rows, and with them its rollups.
    # No index of its own: the unique key's index starts with the tenant.
    tenant = models.ForeignKey(
        settings.SWITCHYARD_TENANT_MODEL,
        on_delete=models.CASCADE,
        related_name="usage_rollups",
        db_index=False,
    )
    day = models.DateField()
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=200, blank=True, default="")
    endpoint = models.CharField(max_length=20)
    success = models.BooleanField()
    error_type = models.CharField(max_length=40, blank=True, default="")
    requests = models.BigIntegerField()
    tokens = models.BigIntegerField()
    prompt_tokens = models.BigIntegerField()
    completion_tokens = models.BigIntegerField()
    # Sum of the known costs; null when no row of the group has a cost (as Sum() says).
    cost_usd = models.DecimalField(max_digits=24, decimal_places=8, null=True, blank=True)
    unpriced_requests = models.BigIntegerField()
    latency_sum = models.BigIntegerField()
    latency_max = models.PositiveIntegerField(null=True, blank=True)

    objects = UsageDailyRollupQuerySet.as_manager()

    class Meta:
        db_table = "llm_usage_daily"
        constraints = [
            # Its index (tenant, day, …) is also the one the stats query reads through.
            models.UniqueConstraint(
                fields=["tenant", "day", "provider", "model", "endpoint", "success", "error_type"],
                name="llm_usage_daily_key",
            ),
        ]
        # For replacing one day's rows (all tenants) when it is rolled up again.
        indexes = [models.Index(fields=["day"], name="llm_usage_daily_day")]

    def __str__(self):
        return f"{self.tenant_id} {self.day} {self.provider}/{self.model} {self.endpoint}"


class UsageRollupState(models.Model):
    """A single row: every closed UTC day before `rolled_until` is in `llm_usage_daily`.

    A watermark rather than a list of days, so that a day without any usage counts as
    rolled up too and the stats query can split its window with one comparison. Rollup
    rows exist only for days before it.
    `rolled_until_at` is the same instant (midnight UTC) for comparing with timestamps.
    """

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON)
    rolled_until = models.DateField()
    rolled_until_at = models.DateTimeField()
    # Raw usage rows of the days before this one were pruned (usage.retention): their
    # rollups are their only record and are never recomputed. Null: nothing pruned.
    pruned_before = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "llm_usage_rollup_state"

    def __str__(self):
        return f"rolled up until {self.rolled_until}"


class TenantLLMLimits(models.Model):
    """An operator's limits for one tenant (SPEC §14); every field null = no such limit.

    Set in the admin (on the tenant's page) or with `manage.py set_llm_limits`; a tenant's
    API key can read them (status endpoint) but never change them. Enforced by
    `llm_providers.limits` (reserve-then-settle admission).
    """

    tenant = models.OneToOneField(
        settings.SWITCHYARD_TENANT_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="llm_limits",
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveBigIntegerField(null=True, blank=True)
    usd_per_day = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    usd_per_month = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    max_concurrent = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        db_table = "llm_tenant_limits"
        verbose_name = "LLM limits"
        verbose_name_plural = "LLM limits"
        constraints = [
            models.CheckConstraint(
                condition=Q(usd_per_day__isnull=True) | Q(usd_per_day__gte=0),
                name="llm_tenant_limits_usd_per_day_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(usd_per_month__isnull=True) | Q(usd_per_month__gte=0),
                name="llm_tenant_limits_usd_per_month_not_negative",
            ),
        ]

    def __str__(self):
        return f"LLM limits of {self.tenant_id}"


class LimitCounters(models.Model):
    """The database admission backend's counters of one tenant (derived state).

    Fixed windows: the current UTC minute (requests, tokens), UTC day and UTC month (cost
    in units of 1e-8 USD, the usage rows' precision), and the calls in flight. Each call's
    worst case is added in one atomic UPDATE before it runs and replaced by its actual
    usage after; `reconcile_llm_limits` rebuilds the counters from the usage rows.
    """

    tenant = models.OneToOneField(
        settings.SWITCHYARD_TENANT_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="+",
    )
    minute = models.BigIntegerField(default=0)
    minute_requests = models.BigIntegerField(default=0)
    minute_tokens = models.BigIntegerField(default=0)
    day = models.BigIntegerField(default=0)
    day_cost = models.BigIntegerField(default=0)
    month = models.BigIntegerField(default=0)
    month_cost = models.BigIntegerField(default=0)
    inflight = models.BigIntegerField(default=0)

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        db_table = "llm_limit_counters"

    def __str__(self):
        return f"limit counters of {self.tenant_id}"


class LimitHold(models.Model):
    """One admitted call's reservation until it settles, or until `expires_at` (a crash)."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(
        settings.SWITCHYARD_TENANT_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    expires_at = models.FloatField()  # Unix time; an expired hold is released by a sweep
    minute = models.BigIntegerField()
    day = models.BigIntegerField()
    month = models.BigIntegerField()
    tokens = models.BigIntegerField()
    cost = models.BigIntegerField()  # 1e-8 USD

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        db_table = "llm_limit_holds"
        indexes = [models.Index(fields=["tenant", "expires_at"], name="llm_limit_holds_expiry")]

    def __str__(self):
        return f"hold #{self.pk} of {self.tenant_id}"
