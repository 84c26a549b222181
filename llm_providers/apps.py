from django.apps import AppConfig


class LLMProvidersConfig(AppConfig):
    name = "llm_providers"
    verbose_name = "LLM providers"
