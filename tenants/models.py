from django.core.validators import RegexValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

tenant_id_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
    "Tenant ids are 1-64 letters, digits, '_' or '-', starting with a letter or digit.",
)


class Tenant(models.Model):
    """A customer of the embedding application; its id is the external identifier."""

    id = models.CharField(primary_key=True, max_length=64, validators=[tenant_id_validator])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.id


class TenantScopedQuerySet(models.QuerySet):
    """The one place where rows are narrowed to a tenant."""

    def for_tenant(self, tenant):
        tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
        return self.filter(tenant_id=tenant_id)


class TenantAPIKeyManager(BaseAPIKeyManager):
    def get_usable_keys(self):
        return super().get_usable_keys().select_related("tenant")


class TenantAPIKey(AbstractAPIKey):
    """A tenant's credential for the REST API; only a hash of the secret is stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")

    objects = TenantAPIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "tenant API key"
        verbose_name_plural = "tenant API keys"
