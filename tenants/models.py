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


def is_tenant_scoped(model) -> bool:
    """Whether `model`'s default manager narrows rows to a tenant (`for_tenant`)."""
    return isinstance(model._default_manager.all(), TenantScopedQuerySet)


class TenantAPIKeyManager(BaseAPIKeyManager.from_queryset(TenantScopedQuerySet)):
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


class AuditEventQuerySet(TenantScopedQuerySet):
    """Append-only: rows are inserted by `tenants.audit.record` and never changed."""

    def update(self, **kwargs):
        raise TypeError("Audit events are append-only: they cannot be updated.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise TypeError("Audit events are append-only: they cannot be updated.")

    def delete(self):
        raise TypeError("Audit events are append-only: they cannot be deleted.")

    delete.queryset_only = True


class AuditEvent(models.Model):
    """Who changed what, when, from where (SPEC §15); written by the services alone."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No database constraint and DO_NOTHING: the history of a tenant outlives the tenant
    # (deleting it must neither delete nor rewrite its events); tenant_id keeps the slug.
    tenant = models.ForeignKey(
        settings.SWITCHYARD_TENANT_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    # admin:<username>, api_key:<prefix>, command:<name> or system.
    actor = models.CharField(max_length=200)
    # <entity>.<verb>, e.g. provider_config.create.
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64, blank=True, default="")
    # {field: [before, after]}; a secret appears only as "[changed]".
    changes = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        db_table = "switchyard_audit_events"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="audit_tenant_created"),
            models.Index(fields=["action", "-created_at"], name="audit_action_created"),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("Audit events are append-only: they cannot be changed.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only: they cannot be deleted.")
