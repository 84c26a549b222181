from django.contrib import admin, messages
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from . import get_tenant_model
from .models import Tenant, TenantAPIKey
from .services import api_key_create, api_key_revoke

# The library's own APIKey model is not used: tenants' keys are TenantAPIKey.
admin.site.unregister(APIKey)


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
    list_display = (*APIKeyModelAdmin.list_display, "tenant")
    list_filter = (*APIKeyModelAdmin.list_filter, "tenant")
    list_select_related = ("tenant",)
    search_fields = ("prefix", "name")
    actions = ["revoke_keys"]

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked=False):
            api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)
