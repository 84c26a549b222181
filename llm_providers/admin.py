"""The operators' admin: provider configs (write-only keys, tests), usage logs, dashboard."""

import copy
from datetime import timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from tenants import get_tenant_model
from tenants.admin import TenantSearchMixin, changelist_for_tenant, register_tenant_panel

from .configs.services import llm_provider_service
from .configs.testing import provider_configs_test
from .limits.services import LIMIT_FIELDS, limits_set
from .models import Endpoint, KeyStatus, ProviderConfig, TenantLLMLimits, UsageLog
from .usage.dashboard import DashboardFilterForm, usage_dashboard
from .usage.selectors import usage_stats_for_window
from .validation.report import check_status
from .validation.runner import validate_provider_configs

ADMIN_CHECK_TIMEOUT = 15.0
MAX_CONFIGS_PER_ACTION = 50


class ProviderConfigForm(forms.ModelForm):
    """Keys are write-only: never rendered, blank keeps the current one."""

    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: the stored key is never shown. Leave blank to keep it.",
    )
    clear_api_key = forms.BooleanField(
        label="Remove the stored key",
        required=False,
        help_text="For a local server that needs no key.",
    )
    active = forms.BooleanField(
        label="Active",
        required=False,
        initial=True,
        help_text="The tenant's one active config; activating it deactivates the other.",
    )

    class Meta:
        model = ProviderConfig
        # is_active is handled by the service (activation is atomic), hence `active`.
        fields = ("tenant", "provider", "default_model", "base_url", "fallback_order", "metadata")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A new config already has its UUID, so "is it new" is asked of _state.
        self.is_new = self.instance._state.adding
        if not self.is_new:
            self.fields["active"].initial = self.instance.is_active

    def clean_metadata(self):
        value = self.cleaned_data.get("metadata")
        return {} if value in (None, "") else value

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        if cleaned.get("api_key") and cleaned.get("clear_api_key"):
            self.add_error("clear_api_key", "Enter a new key or remove the stored one, not both.")
            return cleaned
        candidate = self._candidate(cleaned)
        try:
            # The same rules the service applies when saving (provider, model, base URL
            # safety, key required), surfaced as form errors instead of a failed save.
            llm_provider_service.clean_provider_config(candidate)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return cleaned

    def _candidate(self, cleaned) -> ProviderConfig:
        candidate = ProviderConfig() if self.is_new else copy.copy(self.instance)
        for name in ("provider", "default_model", "base_url"):
            if name in cleaned:
                setattr(candidate, name, cleaned[name] or "")
        if "metadata" in cleaned:
            candidate.metadata = cleaned["metadata"]
        if cleaned.get("api_key"):
            candidate.set_api_key(cleaned["api_key"])
        elif cleaned.get("clear_api_key") or self.is_new:
            candidate.set_api_key("")
        return candidate

    def service_changes(self) -> dict:
        """Keyword arguments for update_provider_config (only what was changed)."""
        data = self.cleaned_data
        changes = {
            name: data[name]
            for name in ("default_model", "base_url", "metadata", "fallback_order")
            if name in self.changed_data
        }
        if data.get("api_key"):
            changes["api_key"] = data["api_key"]
        elif data.get("clear_api_key"):
            changes["api_key"] = ""
        return changes


def key_status_html(config: ProviderConfig):
    status = config.key_status
    if status == KeyStatus.UNDECRYPTABLE:
        return format_html(
            '<strong class="errornote" style="display:inline;padding:2px 6px" '
            'title="{}">⚠ undecryptable</strong>',
            "FIELD_ENCRYPTION_KEY cannot open this key: restore that key or enter the "
            "API key again.",
        )
    return str(status)


def short_text(value: str, limit: int):
    """`value`, cut to `limit` characters with the whole of it in the title."""
    if len(value) <= limit:
        return value
    return format_html('<span title="{}">{}…</span>', value, value[: limit - 1])


def check_outcome_html(outcome: dict | None, *, never: str):
    """A check's outcome as a short coloured cell; its time and error in the title."""
    if not outcome:
        return format_html('<span class="check-none">{}</span>', never)
    at = outcome.get("at", "")[:19].replace("T", " ")
    if outcome.get("success"):
        latency = outcome.get("latency_ms")
        return format_html(
            '<span class="check-ok" style="color:#0a7d32" title="{} UTC">✔ ok{}</span>',
            at,
            f" · {latency} ms" if latency is not None else "",
        )
    error = outcome.get("error") or "failed"
    latency = outcome.get("latency_ms")
    return format_html(
        '<span class="check-failed" style="color:#ba2121" title="{} UTC: {}">✘ {}{}</span>',
        at,
        error,
        error[:40] + ("…" if len(error) > 40 else ""),
        f" · {latency} ms" if latency is not None else "",
    )


class KeyStatusFilter(admin.SimpleListFilter):
    title = "key status"
    parameter_name = "key_status"

    def lookups(self, request, model_admin):
        return KeyStatus.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value == KeyStatus.MISSING:
            return queryset.filter(api_key_encrypted="")
        if value in (KeyStatus.OK, KeyStatus.UNDECRYPTABLE):
            # Whether a key decrypts is only known after decrypting it.
            ids = [
                config.pk
                for config in ProviderConfig.objects.only("id", "api_key_encrypted")
                if config.key_status == value
            ]
            return queryset.filter(pk__in=ids)
        return queryset


@admin.register(ProviderConfig)
class ProviderConfigAdmin(TenantSearchMixin, admin.ModelAdmin):
    form = ProviderConfigForm
    # Few, narrow columns (a 1366-px screen beside the admin's two sidebars): the key and
    # its status in one cell; "health" holds the latest test connection and validation,
    # one line each (their time and full error in the title); the fallback position.
    list_display = (
        "tenant",
        "provider",
        "model_display",
        "is_active",
        "key_display",
        "health",
        "fallback_order",
    )
    list_filter = ("provider", "is_active", "last_test_success", KeyStatusFilter)
    list_select_related = ("tenant",)
    search_fields = ("default_model", "base_url")  # and the tenant (TenantSearchMixin)
    # Tenant ids are slugs operators know; a text box scales to any number of tenants.
    raw_id_fields = ("tenant",)
    actions = ("test_connection", "validate_configs")
    ordering = ("tenant_id", "-created_at")
    status_fields = (
        "masked_key",
        "key_status_display",
        "connection_test_display",
        "validation_display",
        "last_test_display",
        "test_latency_ms",
        "last_tested",
        "created_at",
        "updated_at",
    )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return (
                (None, {"fields": ("tenant", "provider", "default_model", "base_url", "active")}),
                ("Key", {"fields": ("api_key",)}),
                ("Advanced", {"fields": ("metadata",), "classes": ("collapse",)}),
            )
        return (
            (None, {"fields": ("tenant", "provider", "default_model", "base_url", "active")}),
            ("Fallback and circuit breaker", {"fields": ("fallback_order", "breaker_display")}),
            ("Key", {"fields": ("masked_key", "key_status_display", "api_key", "clear_api_key")}),
            ("Health", {"fields": self.status_fields[2:]}),
            ("Advanced", {"fields": ("metadata",), "classes": ("collapse",)}),
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # Moving a config to another tenant or provider is a new config.
        return ("tenant", "provider", "breaker_display", *self.status_fields)

    # -- saving through the service ------------------------------------------------------
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            config_id = llm_provider_service.save_provider_config(
                tenant_id=data["tenant"].pk,
                provider=data["provider"],
                api_key=data.get("api_key") or "",
                default_model=data["default_model"],
                base_url=data.get("base_url") or "",
                activate=data.get("active", False),
                metadata=data.get("metadata") or {},
            )
            obj.pk = config_id
            obj.refresh_from_db()
            return
        changes = form.service_changes()
        if changes:
            llm_provider_service.update_provider_config(config=obj, **changes)
        if data.get("active") and not obj.is_active:
            llm_provider_service.activate(tenant_id=obj.tenant_id, config_id=obj.pk)
            obj.refresh_from_db()
        elif not data.get("active") and obj.is_active:
            llm_provider_service.deactivate(config=obj)

    def delete_model(self, request, obj):
        llm_provider_service.delete_provider_config(config=obj)

    def delete_queryset(self, request, queryset):
        # "Delete selected" too goes through the service: one audit event per config.
        for config in queryset:
            llm_provider_service.delete_provider_config(config=config)

    # -- columns -------------------------------------------------------------------------
    @admin.display(description="circuit breaker")
    def breaker_display(self, obj):
        from .limits import breaker

        state = breaker.state(str(obj.pk))
        if state["state"] == "open":
            return f"open (retry in {round(state['retry_in'] or 0)} s)"
        if state["state"] == "half_open":
            return "half-open (probing)"
        return f"closed ({state['failures']} recent failures)" if state["failures"] else "closed"

    @admin.display(description="key")
    def masked_key(self, obj):
        return obj.api_key_masked or "—"

    @admin.display(description="key status")
    def key_status_display(self, obj):
        return key_status_html(obj)

    @admin.display(description="key")
    def key_display(self, obj):
        if obj.key_status == KeyStatus.OK:
            return obj.api_key_masked
        return self.key_status_display(obj)

    @admin.display(description="health")
    def health(self, obj):
        if obj.last_connection_test is None and obj.last_validation is None:
            # Checked only before each kind had its own record (or never): the latest.
            return self.last_test_display(obj)
        return format_html(
            '<div class="health-test">test: {}</div><div class="health-validation">'
            "validation: {}</div>",
            self.connection_test_display(obj),
            self.validation_display(obj),
        )

    @admin.display(description="model", ordering="default_model")
    def model_display(self, obj):
        return short_text(obj.default_model, 32)

    @admin.display(description="test connection")
    def connection_test_display(self, obj):
        return check_outcome_html(obj.last_connection_test, never="never tested")

    @admin.display(description="validation")
    def validation_display(self, obj):
        return check_outcome_html(obj.last_validation, never="never validated")

    @admin.display(description="latest test or validation", ordering="last_test_success")
    def last_test_display(self, obj):
        # SPEC's four fields: the latest check of either kind (the only record of checks
        # made before each kind had its own).
        if obj.last_test_success is None or obj.last_tested is None:
            return check_outcome_html(None, never="never tested")
        latest = ProviderConfig.check_outcome(
            at=obj.last_tested,
            success=obj.last_test_success,
            latency_ms=obj.test_latency_ms,
            error=obj.last_error,
        )
        return check_outcome_html(latest, never="never tested")

    # -- actions -------------------------------------------------------------------------
    @admin.action(description="Test connection (a real, minimal completion)")
    def test_connection(self, request, queryset):
        # The same test as POST /api/llm/test: its token, retry and deadline limits.
        configs = self._selected(request, queryset)
        if configs is None:
            return
        for config, outcome in zip(configs, provider_configs_test(configs=configs), strict=True):
            if outcome.success:
                self.message_user(
                    request,
                    f"Test of {config}: OK in {outcome.latency_ms} ms.",
                    messages.SUCCESS,
                )
            else:
                status = check_status(success=False, error=outcome.error)
                error = outcome.error or {}
                self.message_user(
                    request,
                    f"Test of {config}: {status} — {error.get('type')}: {error.get('message')}",
                    messages.ERROR,
                )

    @admin.action(description="Validate (as start-up does: LLM_VALIDATION_MODE)")
    def validate_configs(self, request, queryset):
        # mode None: the configured mode (models unless set to ping; "off" still checks).
        self._check(request, queryset, mode=None, endpoint=Endpoint.VALIDATION, label="Validation")

    def _selected(self, request, queryset) -> list[ProviderConfig] | None:
        configs = list(queryset.select_related("tenant")[: MAX_CONFIGS_PER_ACTION + 1])
        if len(configs) > MAX_CONFIGS_PER_ACTION:
            self.message_user(
                request,
                f"Select at most {MAX_CONFIGS_PER_ACTION} configs at a time.",
                messages.ERROR,
            )
            return None
        return configs

    def _check(self, request, queryset, *, mode, endpoint, label):
        configs = self._selected(request, queryset)
        if configs is None:
            return
        report = validate_provider_configs(
            configs, mode=mode, timeout=ADMIN_CHECK_TIMEOUT, endpoint=endpoint
        )
        names = {str(c.pk): str(c) for c in configs}
        for check in report.checks:
            name = names.get(check.config_id, check.provider)
            if check.usable:
                self.message_user(
                    request, f"{label} of {name}: OK in {check.latency_ms} ms.", messages.SUCCESS
                )
            else:
                self.message_user(
                    request,
                    f"{label} of {name}: {check.status} — {check.reason}",
                    messages.ERROR,
                )


@admin.register(UsageLog)
class UsageLogAdmin(TenantSearchMixin, admin.ModelAdmin):
    """Read-only: usage rows are written by LLMService alone."""

    change_list_template = "admin/llm_providers/usagelog/change_list.html"
    # Compact cells to fit a 1366-px screen: the outcome is one cell (error type and
    # status), times and costs short; every detail is on the row's own page.
    list_display = (
        "when",
        "tenant",
        "model_display",
        "endpoint",
        "outcome",
        "tokens",
        "cost_display",
        "latency",
    )
    list_filter = ("provider", "endpoint", "success", "created_at")
    list_select_related = ("tenant",)
    date_hierarchy = "created_at"
    search_fields = ("model", "error_type")  # and the tenant (TenantSearchMixin)
    # Counting a table of millions of rows on every page view is the slow part.
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="when", ordering="created_at")
    def when(self, obj):
        local = timezone.localtime(obj.created_at)
        return format_html(
            '<span title="{}">{}</span>', local.isoformat(), local.strftime("%m-%d %H:%M:%S")
        )

    @admin.display(description="provider · model", ordering="model")
    def model_display(self, obj):
        return format_html("{} · {}", obj.provider, short_text(obj.model, 20))

    @admin.display(description="outcome", ordering="success")
    def outcome(self, obj):
        if obj.success:
            return mark_safe('<span style="color:#0a7d32">✔</span>')  # noqa: S308
        status = f" · {obj.status_code}" if obj.status_code else ""
        return format_html(
            '<span style="color:#ba2121" title="{}">✘ {}{}</span>',
            obj.error_message,
            obj.error_type or "failed",
            status,
        )

    @admin.display(description="tokens", ordering="tokens_used")
    def tokens(self, obj):
        return f"{obj.tokens_used:,}"

    @admin.display(description="USD", ordering="cost_usd")
    def cost_display(self, obj):
        return "—" if obj.cost_usd is None else f"{obj.cost_usd:.4f}"

    @admin.display(description="ms", ordering="latency_ms")
    def latency(self, obj):
        return f"{obj.latency_ms:,}"

    def get_urls(self):
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name="llm_providers_usagelog_dashboard",
        )
        return [dashboard, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "dashboard_url": reverse("admin:llm_providers_usagelog_dashboard"),
        }
        return super().changelist_view(request, extra_context)

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = DashboardFilterForm.for_request(request.GET)
        filters = form.filters()
        params = {
            "tenant": filters["tenant_id"] or "",
            "start": filters["start"].isoformat(),
            "end": filters["end"].isoformat(),
            **{k: filters[k] or "" for k in ("provider", "model", "endpoint", "outcome")},
        }

        def query_without(name):
            return urlencode({k: v for k, v in params.items() if k != name and v})

        context = {
            **self.admin_site.each_context(request),
            "title": "LLM usage dashboard",
            "opts": self.model._meta,
            "form": form,
            "dashboard": usage_dashboard(**filters),
            "active_filters": [
                (k, filters[k]) for k in ("provider", "model", "endpoint", "outcome") if filters[k]
            ],
            "query_without_outcome": query_without("outcome"),
            "query_without_tenant": query_without("tenant"),
            "changelist_url": reverse("admin:llm_providers_usagelog_changelist"),
        }
        return TemplateResponse(request, "admin/llm_providers/usagelog/dashboard.html", context)


# --- Limits on the tenant's page (SPEC §14) -----------------------------------------------
# tenants must not import llm_providers, so the inline is added to the tenant admin here.


class _LimitsFormSet(BaseInlineFormSet):
    """The inline's writes go through limits_set, which audits them (same transaction)."""

    def save_new(self, form, commit=True):
        return self._set(form)

    def save_existing(self, form, obj, commit=True):
        return self._set(form)

    def delete_existing(self, obj, commit=True):
        limits_set(tenant_id=obj.tenant_id, clear=True)

    def _set(self, form):
        values = {field: form.cleaned_data.get(field) for field in LIMIT_FIELDS}
        return limits_set(tenant_id=self.instance.pk, **values)


class TenantLLMLimitsInline(admin.StackedInline):
    model = TenantLLMLimits
    formset = _LimitsFormSet
    can_delete = True
    max_num = 1
    extra = 0
    verbose_name = "LLM limits"
    verbose_name_plural = "LLM limits (empty = no limit; enforced across all processes)"
    fields = (
        "requests_per_minute",
        "tokens_per_minute",
        "usd_per_day",
        "usd_per_month",
        "max_concurrent",
        "usage_now",
    )
    readonly_fields = ("usage_now",)

    @admin.display(description="Used now (incl. calls in flight)")
    def usage_now(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        from .limits.status import limits_status

        status = limits_status(obj.tenant_id) or {}
        lines = [
            f"{name}: {entry['used']} of {entry['limit']}"
            for name, entry in status.items()
            if entry is not None
        ]
        return "; ".join(lines) or "-"


def _add_limits_inline() -> None:
    tenant_admin = admin.site._registry.get(get_tenant_model())
    if tenant_admin is not None and TenantLLMLimitsInline not in tenant_admin.inlines:
        tenant_admin.inlines = [*tenant_admin.inlines, TenantLLMLimitsInline]


_add_limits_inline()


# -- the tenant's page: its configs with their health, its usage ------------------------------
TENANT_PANEL_CONFIGS = 20


@register_tenant_panel
def _provider_configs_panel(tenant) -> dict:
    configs = list(
        ProviderConfig.objects.for_tenant(tenant).order_by("-is_active", "-created_at")[
            : TENANT_PANEL_CONFIGS + 1
        ]
    )
    rows = [
        (
            format_html(
                '<a href="{}">{} · {}</a>',
                reverse("admin:llm_providers_providerconfig_change", args=[config.pk]),
                config.provider,
                config.default_model,
            ),
            "active" if config.is_active else "",
            key_status_html(config),
            check_outcome_html(config.last_connection_test, never="never tested"),
            check_outcome_html(config.last_validation, never="never validated"),
        )
        for config in configs[:TENANT_PANEL_CONFIGS]
    ]
    more = f" (the first {TENANT_PANEL_CONFIGS})" if len(configs) > TENANT_PANEL_CONFIGS else ""
    return {
        "title": "Provider configs",
        "headers": ("config", "", "key", "test connection", "validation"),
        "rows": rows,
        "summary": f"{len(rows)} config(s){more}" if rows else "",
        "empty": "No provider config: calls use the environment fallback, if any.",
        "links": [
            ("All configs", changelist_for_tenant("llm_providers_providerconfig", tenant)),
            (
                "Add a config",
                f"{reverse('admin:llm_providers_providerconfig_add')}?tenant={tenant.pk}",
            ),
        ],
    }


@register_tenant_panel
def _usage_panel(tenant) -> dict:
    # The stats API's own selector: whole days from the daily rollup, edges from the rows.
    now = timezone.now()
    totals = usage_stats_for_window(tenant, start=now - timedelta(days=30), end=now)["totals"]
    cost = totals["cost_usd"]
    rows = [
        ("requests", f"{totals['requests']:,}"),
        ("failed", f"{totals['failures']:,}"),
        ("tokens", f"{totals['tokens']:,}"),
        ("cost (USD)", f"{cost:,.4f}" if cost is not None else "—"),
        (
            "average latency",
            f"{totals['avg_latency_ms']:,} ms" if totals["avg_latency_ms"] is not None else "—",
        ),
    ]
    dashboard = reverse("admin:llm_providers_usagelog_dashboard")
    return {
        "title": "Usage, last 30 days",
        "rows": rows,
        "links": [
            ("Usage dashboard", f"{dashboard}?tenant={tenant.pk}"),
            ("Usage log", changelist_for_tenant("llm_providers_usagelog", tenant)),
        ],
    }
