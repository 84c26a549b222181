from django.contrib import admin
from django.db.models import Count

from tenants.admin import TenantSearchMixin

from .models import Build, BuildStep


class BuildStepInline(admin.TabularInline):
    model = BuildStep
    extra = 0
    can_delete = False
    show_change_link = False
    fields = [
        "position",
        "name",
        "iteration",
        "status",
        "provider",
        "model",
        "tokens_used",
        "cost_usd",
        "latency_ms",
        "usage_log",
        "error",
        "output",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Build)
class BuildAdmin(TenantSearchMixin, admin.ModelAdmin):
    """Builds are created through the API and run by the worker; the admin only watches."""

    list_display = [
        "id",
        "tenant",
        "status",
        "progress",
        "review_passed",
        "total_tokens",
        "total_cost_usd",
        "total_latency_ms",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "review_passed", "created_at"]
    search_fields = ["id", "prompt"]  # and the tenant (TenantSearchMixin)
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    inlines = [BuildStepInline]
    readonly_fields = [
        "id",
        "tenant",
        "status",
        "progress",
        "prompt",
        "model",
        "iteration",
        "max_iterations",
        "review_passed",
        "blueprint",
        "blueprint_text",
        "error",
        "total_tokens",
        "total_prompt_tokens",
        "total_completion_tokens",
        "total_cost_usd",
        "total_latency_ms",
        "task_id",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
    ]
    fields = readonly_fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(steps_done=Count("steps"))
            .order_by("-created_at", "-id")
        )

    @admin.display(description="progress")
    def progress(self, obj):
        return obj.progress(getattr(obj, "steps_done", None))["text"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Viewing is allowed through has_view_permission; nothing here is editable.
        return False
