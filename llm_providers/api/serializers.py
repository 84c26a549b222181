"""Input and output serializers of the provider, test and usage endpoints.

Input serializers are strict: unknown fields and wrong JSON types are errors (a typo in
a field name should not be silently ignored), and no input field ever names a tenant.
"""

import re
from collections.abc import Mapping

from django.core.validators import RegexValidator
from rest_framework import serializers

from tenants.api.serializers import (  # noqa: F401  (re-exported: the strict fields)
    StrictBooleanField,
    StrictCharField,
    StrictInputSerializer,
    StrictIntegerField,
    StrictUUIDField,
)

from ..models import KeyStatus, Provider, ProviderConfig, UsageLog
from ..usage.selectors import STATS_GROUPS

# Provider keys are printable ASCII without spaces; anything else would end up in an HTTP
# header (CR/LF injection) or is a paste accident.
API_KEY_RE = re.compile(r"\A[\x21-\x7e]+\Z")
NO_CONTROL_RE = re.compile(r"\A[^\x00-\x1f\x7f]*\Z")
# Metadata keys whose values are credentials (e.g. extra headers): never echoed back.
SECRET_KEY_NAME_RE = re.compile(r"key|secret|token|passw|auth|credential|cookie|signature", re.I)
REDACTED = "****"


def redact_metadata(value):
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if SECRET_KEY_NAME_RE.search(str(k)) and v not in ("", None)
            else redact_metadata(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_metadata(v) for v in value]
    return value


def restore_redacted(new, old):
    """`new` metadata with every "****" the API showed in place of a credential put back.

    Clients that read a config, change one setting and PATCH the metadata back must not
    overwrite a stored credential with the mask.
    """
    if isinstance(new, Mapping) and isinstance(old, Mapping):
        return {
            k: old[k]
            if v == REDACTED and k in old and SECRET_KEY_NAME_RE.search(str(k))
            else restore_redacted(v, old.get(k))
            for k, v in new.items()
        }
    return new


def _depth(value) -> int:
    if isinstance(value, Mapping):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class MetadataField(serializers.JSONField):
    default_error_messages = {
        "not_object": "metadata must be a JSON object.",
        "nul": "metadata must not contain NUL characters.",
        "too_deep": "metadata must not be nested more than {max_depth} levels deep.",
    }
    MAX_DEPTH = 10

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_object")
        if _depth(data) > self.MAX_DEPTH:
            self.fail("too_deep", max_depth=self.MAX_DEPTH)
        if _has_nul(data):
            self.fail("nul")
        return super().to_internal_value(data)


def api_key_field(**kwargs):
    return StrictCharField(
        write_only=True,
        max_length=500,
        validators=[
            RegexValidator(API_KEY_RE, "The API key must be printable ASCII without spaces.")
        ],
        **kwargs,
    )


def model_field(**kwargs):
    return StrictCharField(
        max_length=200,
        validators=[RegexValidator(NO_CONTROL_RE, "Control characters are not allowed.")],
        **kwargs,
    )


def base_url_field(**kwargs):
    return StrictCharField(max_length=500, allow_blank=True, **kwargs)


# -- provider configs ----------------------------------------------------------------------
class ProviderConfigCreateSerializer(StrictInputSerializer):
    provider = serializers.ChoiceField(choices=Provider.choices)
    api_key = api_key_field(required=False, allow_blank=True)
    default_model = model_field()
    base_url = base_url_field(required=False, default="")
    activate = StrictBooleanField(required=False, default=True)
    metadata = MetadataField(required=False, default=dict)


class ProviderConfigUpdateSerializer(StrictInputSerializer):
    """PATCH: every field optional; a blank, null or absent `api_key` keeps the stored key."""

    api_key = api_key_field(required=False, allow_blank=True, allow_null=True)
    default_model = model_field(required=False)
    base_url = base_url_field(required=False)
    metadata = MetadataField(required=False)
    fallback_order = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=32767,
        help_text="Place in the tenant's fallback chain (ascending, after the active config); "
        "null takes the config out of the chain.",
    )


class ProviderConfigSerializer(serializers.ModelSerializer):
    """A config as the API shows it: the key only as its last four characters."""

    key_status = serializers.ChoiceField(choices=KeyStatus.choices, read_only=True)
    api_key_masked = serializers.CharField(read_only=True)
    metadata = serializers.SerializerMethodField()

    class Meta:
        model = ProviderConfig
        fields = [
            "id",
            "provider",
            "default_model",
            "base_url",
            "is_active",
            "api_key_last4",
            "api_key_masked",
            "key_status",
            "last_tested",
            "test_latency_ms",
            "last_test_success",
            "last_error",
            "metadata",
            "fallback_order",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_metadata(self, obj) -> dict:
        return redact_metadata(obj.metadata or {})


class ProviderErrorSerializer(serializers.Serializer):
    type = serializers.CharField()
    message = serializers.CharField()
    status_code = serializers.IntegerField(allow_null=True)


class LastTestSerializer(serializers.Serializer):
    tested_at = serializers.DateTimeField()
    success = serializers.BooleanField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class CountLimitSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    used = serializers.IntegerField(help_text="Used and reserved by calls in flight.")
    remaining = serializers.IntegerField()
    resets_in = serializers.IntegerField(
        allow_null=True, help_text="Seconds until the window ends (null: no window)."
    )


class MoneyLimitSerializer(serializers.Serializer):
    limit = serializers.CharField(help_text="USD, a decimal string.")
    used = serializers.CharField(help_text="Spent and reserved by calls in flight (USD).")
    remaining = serializers.CharField()
    resets_in = serializers.IntegerField(help_text="Seconds until the UTC day or month ends.")


class LimitsStatusSerializer(serializers.Serializer):
    """The tenant's limits (set by the operator; read-only here) and what is left."""

    requests_per_minute = CountLimitSerializer(allow_null=True)
    tokens_per_minute = CountLimitSerializer(allow_null=True)
    usd_per_day = MoneyLimitSerializer(allow_null=True)
    usd_per_month = MoneyLimitSerializer(allow_null=True)
    max_concurrent = CountLimitSerializer(allow_null=True)


class BreakerStateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["closed", "open", "half_open"])
    failures = serializers.IntegerField(help_text="Transient failures within the window.")
    retry_in = serializers.FloatField(allow_null=True, help_text="Seconds while open.")


class ProviderStatusSerializer(serializers.Serializer):
    available = serializers.BooleanField()
    source = serializers.ChoiceField(choices=["config", "environment", "none"])
    provider = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    key_status = serializers.ChoiceField(choices=KeyStatus.choices)
    error = ProviderErrorSerializer(
        allow_null=True, help_text="Why no call can be made (a configuration error), if so."
    )
    config = ProviderConfigSerializer(allow_null=True)
    last_test = LastTestSerializer(allow_null=True)
    limits = LimitsStatusSerializer(
        allow_null=True, help_text="Null when the operator set no limits for the tenant."
    )
    breaker = BreakerStateSerializer(
        allow_null=True, help_text="The circuit breaker of the config calls go to."
    )


# -- test ------------------------------------------------------------------------------------
class ConnectionTestSerializer(StrictInputSerializer):
    config_id = StrictUUIDField(required=False, allow_null=True)
    prompt = StrictCharField(required=False, max_length=2000)


class ConnectionTestResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    provider = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    error = ProviderErrorSerializer(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)


# -- usage -----------------------------------------------------------------------------------
class UsageLogSerializer(serializers.ModelSerializer):
    provider_config = serializers.UUIDField(source="provider_config_id", allow_null=True)
    metadata = serializers.SerializerMethodField()

    class Meta:
        model = UsageLog
        fields = [
            "id",
            "created_at",
            "provider_config",
            "provider",
            "model",
            "endpoint",
            "success",
            "error_type",
            "error_message",
            "status_code",
            "tokens_used",
            "prompt_tokens",
            "completion_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_usd",
            "latency_ms",
            "metadata",
        ]
        read_only_fields = fields

    def get_metadata(self, obj) -> dict:
        return redact_metadata(obj.metadata or {})


class UsageStatsQuerySerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=STATS_GROUPS, required=False, allow_null=True)


class UsageMetricsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    successes = serializers.IntegerField()
    failures = serializers.IntegerField()
    tokens = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=20, decimal_places=8, allow_null=True)
    unpriced_requests = serializers.IntegerField(
        help_text="Requests whose price is unknown (not included in cost_usd)."
    )
    avg_latency_ms = serializers.FloatField(allow_null=True)
    max_latency_ms = serializers.IntegerField(allow_null=True)


class UsageGroupSerializer(UsageMetricsSerializer):
    key = serializers.CharField(help_text="The provider, model, endpoint or day (YYYY-MM-DD).")


# `from` and `to` are Python keywords, hence the functional form.
UsageStatsSerializer = type(
    "UsageStatsSerializer",
    (serializers.Serializer,),
    {
        "from": serializers.DateTimeField(help_text="Window start (inclusive)."),
        "to": serializers.DateTimeField(help_text="Window end (exclusive)."),
        "group_by": serializers.ChoiceField(choices=STATS_GROUPS, allow_null=True),
        "totals": UsageMetricsSerializer(),
        "groups": UsageGroupSerializer(
            many=True, allow_null=True, help_text="Present when group_by is given."
        ),
        "__module__": __name__,
        "__doc__": "Totals of the tenant's usage in the window, and optional breakdowns.",
    },
)
