"""Builds in the operators' admin: watch them (refreshing while they run), cancel them.

Builds are created through the API and run by the worker; the admin never edits one. A
queued or running build can be cancelled (the action, or the button on its page) and not
deleted: deleting it under the worker would lose its steps mid-call.
"""

import json

from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from tenants.admin import TenantSearchMixin, changelist_for_tenant, register_tenant_panel

from .models import ACTIVE_STATUSES, Build, BuildStatus, BuildStep
from .services import BuildNotCancellable, build_cancel

# While a build runs its page reloads itself this often (seconds).
REFRESH_SECONDS = 5


def pretty_json(value, *, element_id: str = "", open_: bool = False):
    """JSON pretty-printed in a collapsible block (nothing when there is none)."""
    if value in (None, "", {}, []):
        return "—"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    return format_html(
        '<details class="json-block"{}{}><summary>{} lines</summary><pre>{}</pre></details>',
        format_html(' id="{}"', element_id) if element_id else "",
        " open" if open_ else "",
        text.count("\n") + 1,
        text,
    )


def long_text(value: str, *, lines: int = 12):
    """Text kept as written (line breaks, indentation), collapsed when it is long."""
    if not value:
        return "—"
    if value.count("\n") < lines and len(value) < 600:
        return format_html('<pre class="text-block">{}</pre>', value)
    return format_html(
        '<details class="text-block"><summary>{}…</summary><pre>{}</pre></details>',
        value[:80].replace("\n", " "),
        value,
    )


class BuildStepInline(admin.StackedInline):
    """One block per step: what it was, what it cost, what it said (readable, collapsible)."""

    model = BuildStep
    extra = 0
    can_delete = False
    show_change_link = False
    fields = [
        ("name", "iteration", "status"),
        ("provider", "model"),
        ("tokens_used", "cost_usd", "latency_ms", "usage_log"),
        "error_display",
        "output_display",
        "parsed_display",
    ]
    readonly_fields = [
        "name",
        "iteration",
        "status",
        "provider",
        "model",
        "tokens_used",
        "cost_usd",
        "latency_ms",
        "usage_log",
        "error_display",
        "output_display",
        "parsed_display",
    ]
    ordering = ["position"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="error")
    def error_display(self, obj):
        return pretty_json(obj.error, open_=True)

    @admin.display(description="output")
    def output_display(self, obj):
        return long_text(obj.output)

    @admin.display(description="parsed")
    def parsed_display(self, obj):
        return pretty_json(obj.parsed)


@admin.register(Build)
class BuildAdmin(TenantSearchMixin, admin.ModelAdmin):
    change_form_template = "admin/build_loop/build/change_form.html"
    # Compact cells to fit a 1366-px screen; every detail is on the build's page.
    list_display = [
        "short_id",
        "tenant",
        "status",
        "progress",
        "review",
        "totals",
        "created",
    ]
    list_display_links = ["short_id"]
    list_filter = ["status", "review_passed", "created_at"]
    search_fields = ["id", "prompt"]  # and the tenant (TenantSearchMixin)
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    inlines = [BuildStepInline]
    actions = ["cancel_builds"]
    readonly_fields = [
        "id",
        "tenant",
        "status",
        "progress",
        "prompt_display",
        "model",
        "iteration",
        "max_iterations",
        "review_passed",
        "blueprint_display",
        "blueprint_text_display",
        "error_display",
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
    fieldsets = [
        (
            None,
            {
                "fields": [
                    ("id", "tenant"),
                    ("status", "progress", "review_passed"),
                    "prompt_display",
                    ("model", "iteration", "max_iterations"),
                    "error_display",
                ]
            },
        ),
        ("Blueprint", {"fields": ["blueprint_display", "blueprint_text_display"]}),
        (
            "Totals",
            {
                "fields": [
                    ("total_tokens", "total_prompt_tokens", "total_completion_tokens"),
                    ("total_cost_usd", "total_latency_ms"),
                ]
            },
        ),
        (
            "Timing",
            {
                "fields": [
                    ("created_at", "started_at"),
                    ("finished_at", "heartbeat_at"),
                    "task_id",
                ],
                "classes": ["collapse"],
            },
        ),
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(steps_done=Count("steps"))
            .order_by("-created_at", "-id")
        )

    def get_urls(self):
        cancel = path(
            "<path:object_id>/cancel/",
            self.admin_site.admin_view(self.cancel_view),
            name="build_loop_build_cancel",
        )
        return [cancel, *super().get_urls()]

    # -- columns and fields --------------------------------------------------------------
    @admin.display(description="build", ordering="created_at")
    def short_id(self, obj):
        return format_html('<span title="{}">{}…</span>', obj.pk, str(obj.pk)[:8])

    @admin.display(description="review", boolean=True, ordering="review_passed")
    def review(self, obj):
        return obj.review_passed

    @admin.display(description="tokens · cost", ordering="total_cost_usd")
    def totals(self, obj):
        cost = "—" if obj.total_cost_usd is None else f"${obj.total_cost_usd:.4f}"
        return f"{obj.total_tokens:,} · {cost}"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        local = timezone.localtime(obj.created_at)
        return format_html(
            '<span title="{}">{}</span>', local.isoformat(), local.strftime("%m-%d %H:%M")
        )

    @admin.display(description="progress")
    def progress(self, obj):
        return obj.progress(getattr(obj, "steps_done", None))["text"]

    @admin.display(description="prompt")
    def prompt_display(self, obj):
        return long_text(obj.prompt)

    @admin.display(description="blueprint")
    def blueprint_display(self, obj):
        return pretty_json(obj.blueprint, element_id="blueprint", open_=True)

    @admin.display(description="blueprint text (as the model wrote it)")
    def blueprint_text_display(self, obj):
        if obj.blueprint is not None:
            # The same content as the blueprint above; kept, collapsed, for comparison.
            return long_text(obj.blueprint_text, lines=0)
        return long_text(obj.blueprint_text)

    @admin.display(description="error")
    def error_display(self, obj):
        return pretty_json(obj.error, open_=True)

    # -- permissions -----------------------------------------------------------------------
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Viewing is allowed through has_view_permission; nothing here is editable.
        return False

    def has_delete_permission(self, request, obj=None):
        # Cancel it first. ("Delete selected" asks this of every selected build, so a
        # selection with an active build is refused whole.)
        if obj is not None and obj.status in ACTIVE_STATUSES:
            return False
        return super().has_delete_permission(request, obj)

    # -- cancelling --------------------------------------------------------------------------
    def _may_cancel(self, request) -> bool:
        # Cancelling changes a build: the operator needs the change permission of the
        # model itself, not the admin's (always False here: nothing is editable).
        return request.user.has_perm("build_loop.change_build")

    @admin.action(description="Cancel selected builds (queued or running)")
    def cancel_builds(self, request, queryset):
        if not self._may_cancel(request):
            self.message_user(request, "You may not cancel builds.", messages.ERROR)
            return
        cancelled = 0
        for build in queryset.filter(status__in=ACTIVE_STATUSES):
            try:
                build_cancel(build=build)
                cancelled += 1
            except BuildNotCancellable:
                pass  # it finished meanwhile
        self.message_user(request, f"Cancelled {cancelled} build(s).", messages.SUCCESS)

    def cancel_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        build = get_object_or_404(Build, pk=object_id)
        url = reverse("admin:build_loop_build_change", args=[build.pk])
        if not self._may_cancel(request):
            self.message_user(request, "You may not cancel builds.", messages.ERROR)
            return HttpResponseRedirect(url)
        try:
            build_cancel(build=build)
        except BuildNotCancellable as exc:
            self.message_user(request, f"Not cancelled: {exc}", messages.WARNING)
        else:
            self.message_user(request, "The build was cancelled.", messages.SUCCESS)
        return HttpResponseRedirect(url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        build = self.get_object(request, object_id)
        extra = {}
        if build is not None:
            active = build.status in ACTIVE_STATUSES
            extra = {
                "build_active": active,
                "refresh_seconds": REFRESH_SECONDS if active else None,
                "cancel_url": reverse("admin:build_loop_build_cancel", args=[build.pk])
                if active and self._may_cancel(request)
                else None,
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


@register_tenant_panel
def _builds_panel(tenant) -> dict:
    counts = dict(
        Build.objects.for_tenant(tenant).values_list("status").annotate(n=Count("id")).order_by()
    )
    recent = Build.objects.for_tenant(tenant).order_by("-created_at")[:5]
    rows = [
        (
            format_html(
                '<a href="{}">{}…</a>',
                reverse("admin:build_loop_build_change", args=[b.pk]),
                str(b.pk)[:8],
            ),
            b.status,
            b.created_at.strftime("%Y-%m-%d %H:%M"),
        )
        for b in recent
    ]
    summary = ", ".join(f"{counts[s]} {s}" for s in BuildStatus.values if counts.get(s))
    return {
        "title": "Builds",
        "summary": summary,
        "headers": ("build", "status", "created"),
        "rows": rows,
        "empty": "No builds.",
        "links": [
            ("All builds", changelist_for_tenant("build_loop_build", tenant)),
            (
                "Running builds",
                changelist_for_tenant("build_loop_build", tenant) + "&status__exact=running",
            ),
        ],
    }
