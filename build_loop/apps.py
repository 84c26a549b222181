from django.apps import AppConfig

from tenants.conf import apply_defaults

from .conf import DEFAULTS


class BuildLoopConfig(AppConfig):
    name = "build_loop"
    verbose_name = "Build loop"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name, app_module):
        super().__init__(app_name, app_module)
        apply_defaults(DEFAULTS)
