import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from llm_providers.models import UsageLog
from tenants.models import TenantScopedQuerySet

MAX_ITERATIONS_LIMIT = 10
DEFAULT_MAX_ITERATIONS = 3
# Every iteration is one generating call (blueprint or refine) and one review call.
STEPS_PER_ITERATION = 2


class BuildStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (BuildStatus.QUEUED, BuildStatus.RUNNING)


class StepName(models.TextChoices):
    BLUEPRINT = "blueprint"
    REVIEW = "review"
    REFINE = "refine"


class StepStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BuildQuerySet(TenantScopedQuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)


class Build(models.Model):
    """One run of the blueprint → review → refine loop for a tenant's prompt."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        settings.SWITCHYARD_TENANT_MODEL, on_delete=models.CASCADE, related_name="builds"
    )
    prompt = models.TextField()
    # Optional override of the provider config's default model; blank = the config's.
    model = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(
        max_length=20, choices=BuildStatus.choices, default=BuildStatus.QUEUED, db_index=True
    )
    iteration = models.PositiveSmallIntegerField(default=0)
    max_iterations = models.PositiveSmallIntegerField(
        default=DEFAULT_MAX_ITERATIONS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_ITERATIONS_LIMIT)],
    )
    # The final blueprint: parsed JSON when the model produced some, and always the raw text.
    blueprint = models.JSONField(null=True, blank=True)
    blueprint_text = models.TextField(blank=True, default="")
    # Outcome of the latest review: None until a review ran.
    review_passed = models.BooleanField(null=True, blank=True)
    # Normalised error ({"type", "message", "status_code"}) when the build failed.
    error = models.JSONField(null=True, blank=True)

    # Totals are recomputed from the steps' usage rows (see services.refresh_build_totals),
    # never accumulated by hand, so they cannot drift from the usage log.
    total_tokens = models.PositiveIntegerField(default=0)
    total_prompt_tokens = models.PositiveIntegerField(default=0)
    total_completion_tokens = models.PositiveIntegerField(default=0)
    total_cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    total_latency_ms = models.PositiveIntegerField(default=0)

    task_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched by the worker before every LLM call; a running build whose heartbeat is
    # older than BUILD_STALE_AFTER_SECONDS lost its worker (see services.fail_stale_builds).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = BuildQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="build_tenant_created"),
            models.Index(fields=["status", "heartbeat_at"], name="build_status_heartbeat"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_iterations__gte=1) & Q(max_iterations__lte=MAX_ITERATIONS_LIMIT),
                name="build_max_iterations_range",
            ),
            models.CheckConstraint(
                condition=Q(status__in=BuildStatus.values), name="build_known_status"
            ),
        ]

    def __str__(self):
        return f"{self.tenant_id}/build {self.pk} ({self.status})"

    @property
    def max_steps(self) -> int:
        return self.max_iterations * STEPS_PER_ITERATION

    def progress(self, steps_done: int | None = None) -> dict:
        """`step n of at most m`: n counts started steps, m is the most the loop can take."""
        if steps_done is None:
            steps_done = self.steps.count()
        return {
            "step": steps_done,
            "max_steps": self.max_steps,
            "iteration": self.iteration,
            "max_iterations": self.max_iterations,
            "text": f"step {steps_done} of at most {self.max_steps}",
        }


class BuildStep(models.Model):
    """One LLM call of a build, with its outcome and its usage row."""

    id = models.BigAutoField(primary_key=True)
    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="steps")
    # 1-based order of the step within its build.
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=20, choices=StepName.choices)
    iteration = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=StepStatus.choices, default=StepStatus.RUNNING)
    provider = models.CharField(max_length=20, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    # The raw answer, and its JSON when one could be extracted.
    output = models.TextField(blank=True, default="")
    parsed = models.JSONField(null=True, blank=True)
    tokens_used = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    usage_log = models.ForeignKey(
        UsageLog,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="build_steps",
    )
    error = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["build", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["build", "position"], name="build_step_unique_position"
            ),
        ]

    def __str__(self):
        return f"{self.name} #{self.position} (iteration {self.iteration}, {self.status})"
