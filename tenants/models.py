from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

tenant_id_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
    "Tenant ids are 1-64 letters, digits, '_' or '-', starting with a letter or digit.",
)


class AbstractTenant(models.Model):
    """What Switchyard needs of a tenant model: a boolean `is_active` (a disabled tenant's
    keys and calls are refused). A host project's own model (SWITCHYARD_TENANT_MODEL) may
    inherit this or simply have such a field; its primary key is a string or an integer."""

    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class Tenant(AbstractTenant):
    """A customer of the embedding application; its id is the external identifier."""

    id = models.CharField(primary_key=True, max_length=64, validators=[tenant_id_validator])

    class Meta:
        ordering = ["id"]
        swappable = "SWITCHYARD_TENANT_MODEL"

    def __str__(self):
        return self.id


class TenantScopedQuerySet(models.QuerySet):
    """The one place where rows are narrowed to a tenant."""

    def for_tenant(self, tenant):
        tenant_id = tenant.pk if isinstance(tenant, models.Model) else tenant
        return self.filter(tenant_id=tenant_id)


class TenantAPIKeyManager(BaseAPIKeyManager):
    def get_usable_keys(self):
        return super().get_usable_keys().select_related("tenant")


class TenantAPIKey(AbstractAPIKey):
    """A tenant's credential for the REST API; only a hash of the secret is stored."""

    tenant = models.ForeignKey(
        settings.SWITCHYARD_TENANT_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )

    objects = TenantAPIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "tenant API key"
        verbose_name_plural = "tenant API keys"
