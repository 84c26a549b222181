import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, close_old_connections, connection, transaction

from llm_providers.models import Provider, ProviderConfig
from llm_providers.providers import get_adapter
from llm_providers.services import llm_provider_service
from tenants.models import Tenant
from tests.factories import ProviderConfigFactory, TenantFactory


def save(**kwargs):
    defaults = dict(
        tenant_id="tenant_123",
        provider="openai",
        api_key="sk-test-fake-key-0001",
        default_model="gpt-4o-mini",
    )
    return llm_provider_service.save_provider_config(**{**defaults, **kwargs})


def test_save_provider_config_creates_an_active_config_and_the_tenant(db):
    config_id = save()
    config = llm_provider_service.get_active_config("tenant_123")
    assert config.pk == config_id
    assert config.provider == "openai"
    assert Tenant.objects.filter(pk="tenant_123").exists()
    assert llm_provider_service.get_api_key("tenant_123") == "sk-test-fake-key-0001"


def test_saving_a_new_active_config_deactivates_the_previous_one(db):
    first = save()
    second = save(provider="anthropic", default_model="claude-haiku-4-5")
    assert llm_provider_service.get_active_config("tenant_123").pk == second
    assert ProviderConfig.objects.get(pk=first).is_active is False


def test_inactive_save_keeps_the_current_active_config(db):
    first = save()
    save(activate=False)
    assert llm_provider_service.get_active_config("tenant_123").pk == first


def test_activate_switches_atomically(db):
    first = save()
    second = save(activate=False)
    llm_provider_service.activate(tenant_id="tenant_123", config_id=second)
    assert list(ProviderConfig.objects.active().values_list("pk", flat=True)) == [second]
    llm_provider_service.activate(tenant_id="tenant_123", config_id=first)
    assert list(ProviderConfig.objects.active().values_list("pk", flat=True)) == [first]


def test_activate_refuses_another_tenants_config(db):
    TenantFactory(id="tenant_other")
    foreign = save(tenant_id="tenant_other")
    save()
    with pytest.raises(ProviderConfig.DoesNotExist):
        llm_provider_service.activate(tenant_id="tenant_123", config_id=foreign)


def test_get_active_config_and_key_are_none_without_a_config(db):
    assert llm_provider_service.get_active_config("tenant_123") is None
    assert llm_provider_service.get_api_key("tenant_123") is None


def test_database_allows_at_most_one_active_config_per_tenant(db):
    tenant = TenantFactory()
    ProviderConfigFactory(tenant=tenant, is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ProviderConfigFactory(tenant=tenant, is_active=True)


def test_other_tenants_may_each_have_an_active_config(db):
    ProviderConfigFactory(tenant=TenantFactory(), is_active=True)
    ProviderConfigFactory(tenant=TenantFactory(), is_active=True)
    assert ProviderConfig.objects.active().count() == 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"provider": "cohere"}, "provider"),  # unknown (mistral, used before, is one now)
        ({"default_model": ""}, "default_model"),
        ({"api_key": ""}, "api_key"),
        ({"provider": "local", "api_key": "", "base_url": ""}, "base_url"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"base_url": "http://169.254.169.254/latest"}, "base_url"),
        ({"base_url": "http://10.0.0.5/v1"}, "base_url"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
    ],
)
def test_invalid_configs_are_refused_and_nothing_is_saved(db, changes, field):
    with pytest.raises(ValidationError) as excinfo:
        save(**changes)
    assert field in excinfo.value.message_dict
    assert not ProviderConfig.objects.exists()


def test_local_provider_on_loopback_needs_no_key(db):
    config_id = save(
        provider="local",
        api_key="",
        base_url="http://127.0.0.1:8080/v1/",
        default_model="gemma-3-270m",
    )
    config = ProviderConfig.objects.get(pk=config_id)
    assert config.base_url == "http://127.0.0.1:8080/v1"
    assert llm_provider_service.get_api_key("tenant_123") is None


def test_update_with_blank_key_keeps_the_current_key(db):
    config = ProviderConfig.objects.get(pk=save())
    llm_provider_service.update_provider_config(config=config, api_key=None, default_model="gpt-4o")
    config.refresh_from_db()
    assert config.default_model == "gpt-4o"
    assert config.api_key_encrypted == "sk-test-fake-key-0001"


@pytest.mark.django_db(transaction=True)
def test_racing_activations_leave_exactly_one_active_config():
    tenant = TenantFactory()
    configs = [ProviderConfigFactory(tenant=tenant, is_active=False) for _ in range(4)]
    barrier = threading.Barrier(len(configs))
    errors = []

    def activate(config):
        try:
            barrier.wait()
            llm_provider_service.activate(tenant_id=tenant.pk, config_id=config.pk)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=activate, args=(c,)) for c in configs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ProviderConfig.objects.for_tenant(tenant).active().count() == 1


@pytest.mark.parametrize("provider", Provider.values)
def test_save_time_rules_are_the_adapters_own(provider):
    # One rule (engine/resolution.py, from adapter metadata) for saving and for calling.
    adapter = get_adapter(provider)
    config = ProviderConfig(provider=provider, default_model="m", metadata={})

    if not adapter.requires_api_key and adapter.default_base_url:
        llm_provider_service.clean_provider_config(config)  # nothing is missing (Ollama)
        return
    with pytest.raises(ValidationError) as raised:
        llm_provider_service.clean_provider_config(config)

    errors = raised.value.message_dict
    assert ("api_key" in errors) is adapter.requires_api_key
    assert ("base_url" in errors) is (not adapter.default_base_url)


def test_a_built_in_loopback_default_is_checked_like_a_tenants_own_url(db):
    # Ollama's preset defaults to 127.0.0.1:11434: with no base_url of its own, a tenant's
    # config must still go through the connect-time address check (LLM_BASE_URL_ALLOWLIST),
    # or any tenant could reach the machine's loopback ports.
    from llm_providers.engine.resolution import resolve

    config = ProviderConfigFactory(provider="ollama", base_url="", api_key_encrypted="")

    assert resolve(config.tenant_id).check_address is True


def test_an_operator_set_provider_url_is_trusted(db, settings):
    from llm_providers.engine.resolution import resolve

    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    config = ProviderConfigFactory(provider="openai", base_url="")

    assert resolve(config.tenant_id).check_address is False
