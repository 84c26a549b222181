from django.apps import AppConfig

from .conf import DEFAULTS, apply_defaults


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name, app_module):
        super().__init__(app_name, app_module)
        # Before any model module is imported: the foreign keys read the tenant model.
        apply_defaults(DEFAULTS)

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
