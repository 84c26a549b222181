from collections.abc import Callable

from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from . import get_tenant_model
from .models import AuditEvent, Tenant, TenantAPIKey
from .services import (
    TENANT_FIELDS,
    api_key_create,
    api_key_delete,
    api_key_revoke,
    api_key_update,
    tenant_create,
    tenant_delete,
    tenant_update,
)

# The library's own APIKey model is not used: tenants' keys are TenantAPIKey.
admin.site.unregister(APIKey)

# What a tenant's page shows about the tenant from other apps (its provider configs, usage,
# builds): they register a panel here, so that tenants imports none of them (the arrows go
# build_loop → llm_providers → tenants). A panel is `panel(tenant) -> dict` with "title",
# optional "headers" and "rows" (cells are text or format_html), "summary" and "links"
# ([(text, url)], pre-filtered lists).
TENANT_PANELS: list[Callable[[Tenant], dict]] = []


def register_tenant_panel(panel: Callable[[Tenant], dict]):
    TENANT_PANELS.append(panel)
    return panel


def changelist_for_tenant(model_admin_name: str, tenant: Tenant, field: str = "tenant") -> str:
    """The admin list `admin:<app>_<model>_changelist`, filtered to `tenant`."""
    # The key's own name, as the admin's related-field filter spells it: SWITCHYARD_TENANT_MODEL
    # may name a model whose primary key is not `id`.
    key = tenant._meta.pk.name
    return f"{reverse(f'admin:{model_admin_name}_changelist')}?{field}__{key}__exact={tenant.pk}"


@register_tenant_panel
def _api_keys_panel(tenant: Tenant) -> dict:
    keys = list(tenant.api_keys.all())
    active = sum(1 for key in keys if not key.revoked and not key.has_expired)
    return {
        "title": "API keys",
        "summary": f"{active} usable of {len(keys)} (listed below)",
        "links": [
            ("All API keys of this tenant", changelist_for_tenant("tenants_tenantapikey", tenant)),
            ("Audit log of this tenant", changelist_for_tenant("tenants_auditevent", tenant)),
        ],
    }


class TenantAPIKeyInline(admin.TabularInline):
    model = TenantAPIKey
    extra = 0
    can_delete = False
    fields = ("prefix", "name", "created", "expiry_date", "revoked")
    readonly_fields = ("prefix", "name", "created", "expiry_date", "revoked")
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        # New keys are issued with the "Issue a new API key" action so the secret can be
        # shown once; the inline would have nowhere to show it.
        return False


@admin.action(description="Issue a new API key (shown once)")
def issue_api_key(modeladmin, request, queryset):
    """An admin action for the tenant model's admin; a host whose own model is the tenant
    model (SWITCHYARD_TENANT_MODEL) can add it, and TenantAPIKeyInline, to its ModelAdmin."""
    for tenant in queryset:
        api_key, key = api_key_create(tenant=tenant, name="issued from admin")
        modeladmin.message_user(
            request,
            format_html(
                "New API key for <b>{}</b> — copy it now, it will not be shown again: "
                "<code>{}</code>",
                tenant.pk,
                key,
            ),
            messages.WARNING,
        )


class TenantAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("id", "name")
    fields = ("id", "name", "is_active", "created_at")
    inlines = [TenantAPIKeyInline]
    actions = [issue_api_key]

    def get_readonly_fields(self, request, obj=None):
        return ("id", "created_at") if obj else ("created_at",)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        tenant = self.get_object(request, object_id)
        if tenant is not None:
            extra_context = {
                **(extra_context or {}),
                "tenant_panels": [panel(tenant) for panel in TENANT_PANELS],
            }
        return super().change_view(request, object_id, form_url, extra_context)

    # -- writes go through the services, which write the audit events ---------------------
    def save_model(self, request, obj, form, change):
        if not change:
            tenant_create(tenant_id=obj.pk, name=obj.name, is_active=obj.is_active)
            obj._state.adding = False
            return
        changed = {name: getattr(obj, name) for name in TENANT_FIELDS if name in form.changed_data}
        if changed:
            tenant_update(tenant=obj, **changed)

    def delete_model(self, request, obj):
        tenant_delete(tenant=obj)

    def delete_queryset(self, request, queryset):
        for tenant in queryset:
            tenant_delete(tenant=tenant)


# Swapped for a host model (SWITCHYARD_TENANT_MODEL), tenants.Tenant has no table: the
# host's own admin shows its model.
if not Tenant._meta.swapped:
    admin.site.register(Tenant, TenantAdmin)


class TenantSearchMixin:
    """Search a ModelAdmin's rows by their tenant, whatever SWITCHYARD_TENANT_MODEL is.

    A text tenant primary key (and a `name` field, when the model has one) is searched like
    the admin's other search fields; an integer one is matched exactly, only for a search
    term that is a number (a word is not an integer, and a text search on an integer column
    would cast every row).
    """

    tenant_path = "tenant"

    def get_search_fields(self, request):
        model = get_tenant_model()
        fields = list(super().get_search_fields(request))
        if model._meta.pk.get_internal_type() in ("CharField", "SlugField"):
            fields.append(f"{self.tenant_path}__{model._meta.pk.name}")
        if any(f.name == "name" for f in model._meta.concrete_fields):
            fields.append(f"{self.tenant_path}__name")
        return fields

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        pk = get_tenant_model()._meta.pk
        term = search_term.strip()
        if pk.get_internal_type() not in ("CharField", "SlugField") and term.isdigit():
            queryset |= self.model.objects.filter(**{f"{self.tenant_path}__pk": int(term)})
        return queryset, may_have_duplicates


@admin.register(TenantAPIKey)
class TenantAPIKeyAdmin(TenantSearchMixin, APIKeyModelAdmin):
    # The library's columns, narrower (a 1366-px screen): dates short, expiry in one cell.
    list_display = ("prefix", "name", "tenant", "created_short", "expiry", "revoked")
    list_filter = (*APIKeyModelAdmin.list_filter, "tenant")
    list_select_related = ("tenant",)
    search_fields = ("prefix", "name")
    actions = ["revoke_keys"]

    @admin.display(description="created", ordering="created")
    def created_short(self, obj):
        return timezone.localtime(obj.created).strftime("%Y-%m-%d")

    @admin.display(description="expires", ordering="expiry_date")
    def expiry(self, obj):
        if obj.expiry_date is None:
            return "never"
        day = timezone.localtime(obj.expiry_date).strftime("%Y-%m-%d")
        return f"expired {day}" if obj.has_expired else day

    # -- writes go through the services, which write the audit events ---------------------
    def save_model(self, request, obj, form, change):
        if not change:
            api_key, key = api_key_create(
                tenant=obj.tenant, name=obj.name, expires_at=obj.expiry_date
            )
            obj.pk, obj.prefix, obj.created = api_key.pk, api_key.prefix, api_key.created
            obj._state.adding = False
            # The library's own wording, which operators (and the tests) know.
            self.message_user(
                request,
                f"The API key for {api_key.name} is: {key}. Please store it somewhere safe: "
                "you will not be able to see it again.",
                messages.WARNING,
            )
            return
        changed = {
            name: getattr(obj, name)
            for name in ("name", "expiry_date")
            if name in form.changed_data
        }
        if changed:
            api_key_update(api_key=obj, **changed)
        # The library's model refuses to un-revoke a key, so a change here is a revocation.
        if "revoked" in form.changed_data and obj.revoked:
            obj.revoked = False  # as stored; the service revokes and audits
            api_key_revoke(api_key=obj)

    def delete_model(self, request, obj):
        api_key_delete(api_key=obj)

    def delete_queryset(self, request, queryset):
        for api_key in queryset:
            api_key_delete(api_key=api_key)

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked=False):
            api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: events are appended by the services and never changed or deleted."""

    list_display = ("created_at", "tenant_id", "actor", "action", "target_type", "target_id", "ip")
    list_filter = ("action", "actor", "created_at", ("tenant", admin.RelatedOnlyFieldListFilter))
    search_fields = ("tenant_id", "actor", "action", "target_id")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "tenant_id",
        "actor",
        "action",
        "target_type",
        "target_id",
        "ip",
        "changes",
    )
    readonly_fields = fields
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
