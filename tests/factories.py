"""factory_boy factories shared by the whole suite."""

import factory
from factory.django import DjangoModelFactory

from llm_providers.models import ProviderConfig, UsageLog
from tenants.models import Tenant, TenantAPIKey


class TenantFactory(DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("id",)

    id = factory.Sequence(lambda n: f"tenant_{n}")
    name = factory.Faker("company")


class TenantAPIKeyFactory(DjangoModelFactory):
    """Creates a key; the plain key is left on the instance as `plain_key`."""

    class Meta:
        model = TenantAPIKey

    tenant = factory.SubFactory(TenantFactory)
    name = "test key"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        obj, key = model_class.objects.create_key(**kwargs)
        obj.plain_key = key
        return obj


class ProviderConfigFactory(DjangoModelFactory):
    class Meta:
        model = ProviderConfig
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    provider = "openai"
    default_model = "gpt-4o-mini"
    base_url = ""
    is_active = True
    metadata = factory.LazyFunction(dict)

    @factory.post_generation
    def api_key(obj, create, extracted, **kwargs):
        key = "sk-test-" + "x" * 24 + "ab12" if extracted is None else extracted
        obj.set_api_key(key)
        if create:
            obj.save()


class UsageLogFactory(DjangoModelFactory):
    class Meta:
        model = UsageLog

    tenant = factory.SubFactory(TenantFactory)
    provider = "openai"
    model = "gpt-4o-mini"
    endpoint = "completion"
    prompt_tokens = 10
    completion_tokens = 5
    tokens_used = 15
    latency_ms = 100
    success = True
