from django.contrib import admin, messages
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

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


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("id", "name")
    inlines = [TenantAPIKeyInline]
    actions = ["issue_api_key"]

    def get_readonly_fields(self, request, obj=None):
        return ("id", "created_at") if obj else ("created_at",)

    @admin.action(description="Issue a new API key (shown once)")
    def issue_api_key(self, request, queryset):
        for tenant in queryset:
            api_key, key = api_key_create(tenant=tenant, name="issued from admin")
            self.message_user(
                request,
                format_html(
                    "New API key for <b>{}</b> — copy it now, it will not be shown again: "
                    "<code>{}</code>",
                    tenant.pk,
                    key,
                ),
                messages.WARNING,
            )


@admin.register(TenantAPIKey)
class TenantAPIKeyAdmin(APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "tenant")
    list_filter = (*APIKeyModelAdmin.list_filter, "tenant")
    list_select_related = ("tenant",)
    search_fields = ("prefix", "name", "tenant__id")
    actions = ["revoke_keys"]

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked=False):
            api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)
