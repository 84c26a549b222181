from rest_framework import serializers
from rest_framework.reverse import reverse

from tenants.api.serializers import (
    StrictCharField,
    StrictInputSerializer,
    StrictIntegerField,
)

from .models import DEFAULT_MAX_ITERATIONS, MAX_ITERATIONS_LIMIT, Build, BuildStep

PROMPT_MAX_LENGTH = 20_000


class BuildStartInputSerializer(StrictInputSerializer):
    """Strict like the provider endpoints: unknown fields (`tenant` among them) and values
    of the wrong JSON type are a 400, never ignored or coerced."""

    prompt = StrictCharField(max_length=PROMPT_MAX_LENGTH, trim_whitespace=True)
    max_iterations = StrictIntegerField(
        min_value=1, max_value=MAX_ITERATIONS_LIMIT, default=DEFAULT_MAX_ITERATIONS
    )
    model = StrictCharField(
        max_length=200, required=False, allow_blank=True, default="", trim_whitespace=True
    )


class BuildStepSerializer(serializers.ModelSerializer):
    usage_log_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = BuildStep
        fields = [
            "position",
            "name",
            "iteration",
            "status",
            "provider",
            "model",
            "output",
            "parsed",
            "tokens_used",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "latency_ms",
            "usage_log_id",
            "error",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class BuildSerializer(serializers.ModelSerializer):
    """A build without its steps (list view)."""

    progress = serializers.SerializerMethodField()
    totals = serializers.SerializerMethodField()
    status_url = serializers.SerializerMethodField()

    class Meta:
        model = Build
        fields = [
            "id",
            "status",
            "prompt",
            "model",
            "iteration",
            "max_iterations",
            "progress",
            "review_passed",
            "blueprint",
            "blueprint_text",
            "error",
            "totals",
            "created_at",
            "started_at",
            "finished_at",
            "status_url",
        ]
        read_only_fields = fields

    def get_progress(self, build) -> dict:
        steps_done = getattr(build, "steps_done", None)
        return build.progress(steps_done)

    def get_totals(self, build) -> dict:
        return {
            "tokens_used": build.total_tokens,
            "prompt_tokens": build.total_prompt_tokens,
            "completion_tokens": build.total_completion_tokens,
            # Fixed-point like every other cost: SQLite hands back Decimal("0E-8") for zero.
            "cost_usd": None if build.total_cost_usd is None else f"{build.total_cost_usd:f}",
            "latency_ms": build.total_latency_ms,
        }

    def get_status_url(self, build) -> str:
        return reverse("build-detail", kwargs={"pk": build.pk}, request=self.context.get("request"))


class BuildDetailSerializer(BuildSerializer):
    steps = BuildStepSerializer(many=True, read_only=True)

    class Meta(BuildSerializer.Meta):
        fields = [*BuildSerializer.Meta.fields, "steps"]
        read_only_fields = fields
