from django.apps import AppConfig

from tenants.conf import apply_defaults

from .conf import DEFAULTS


class LLMProvidersConfig(AppConfig):
    name = "llm_providers"
    verbose_name = "LLM providers"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name, app_module):
        super().__init__(app_name, app_module)
        # A host project sets only the settings it wants to change (tenants/conf.py).
        apply_defaults(DEFAULTS)

    def ready(self):
        from . import checks  # noqa: F401  (registers the settings checks)
        from .limits import policy

        policy.connect_signals()
        # Serving processes only, in a background thread; see validation/startup.py.
        from .validation.startup import maybe_start_validation

        maybe_start_validation()
