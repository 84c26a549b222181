from django.apps import AppConfig


class LLMProvidersConfig(AppConfig):
    name = "llm_providers"
    verbose_name = "LLM providers"

    def ready(self):
        from .limits import policy

        policy.connect_signals()
        # Serving processes only, in a background thread; see validation/startup.py.
        from .validation.startup import maybe_start_validation

        maybe_start_validation()
