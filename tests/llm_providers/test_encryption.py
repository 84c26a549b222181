import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from llm_providers.configs.encryption import UndecryptableKeyError, UndecryptableSecret
from llm_providers.models import KeyStatus, ProviderConfig
from llm_providers.services import llm_provider_service
from tests.factories import ProviderConfigFactory

SECRET = "sk-test-plaintext-secret-9876"


def raw_key_column(config_id):
    field = ProviderConfig._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key_encrypted FROM llm_provider_configs WHERE id = %s",
            [field.get_db_prep_value(config_id, connection)],
        )
        return cursor.fetchone()[0]


def current_keys():
    from django.conf import settings

    return list(settings.FIELD_ENCRYPTION_KEY)


def test_key_is_ciphertext_at_rest(db):
    config = ProviderConfigFactory(api_key=SECRET)
    raw = raw_key_column(config.pk)
    assert SECRET not in raw
    # (Not "its last four digits are not in raw": a random Fernet token holds any four
    # characters now and then; the decryption below proves it is our key's ciphertext.)
    Fernet(current_keys()[0]).decrypt(raw.encode())  # a Fernet token of our key
    assert ProviderConfig.objects.get(pk=config.pk).api_key_encrypted == SECRET


def test_only_last_four_characters_are_kept_for_display(db):
    config_id = llm_provider_service.save_provider_config(
        tenant_id="tenant_123", provider="openai", api_key=SECRET, default_model="gpt-4o-mini"
    )
    config = ProviderConfig.objects.get(pk=config_id)
    assert config.api_key_last4 == "9876"
    assert config.api_key_masked == "****9876"


def test_empty_key_is_stored_empty_for_keyless_local_servers(db):
    config = ProviderConfigFactory(
        provider="local", base_url="http://127.0.0.1:8080/v1", api_key=""
    )
    assert raw_key_column(config.pk) == ""
    assert ProviderConfig.objects.get(pk=config.pk).key_status == KeyStatus.MISSING


def test_wrong_encryption_key_fails_closed_instead_of_returning_ciphertext(db):
    config = ProviderConfigFactory(api_key=SECRET)
    ciphertext = raw_key_column(config.pk)
    with override_settings(FIELD_ENCRYPTION_KEY=[Fernet.generate_key().decode()]):
        loaded = ProviderConfig.objects.get(pk=config.pk)
        assert isinstance(loaded.api_key_encrypted, UndecryptableSecret)
        assert loaded.key_status == KeyStatus.UNDECRYPTABLE
        assert loaded.has_undecryptable_key
        with pytest.raises(UndecryptableKeyError) as excinfo:
            llm_provider_service.get_api_key(config.tenant_id)
        assert ciphertext not in str(excinfo.value)
        with pytest.raises(UndecryptableKeyError):
            str(loaded.api_key_encrypted)
        # Saving the row again must not destroy (or double-encrypt) the stored key.
        loaded.default_model = "gpt-4o"
        loaded.save()
    assert raw_key_column(config.pk) == ciphertext
    assert ProviderConfig.objects.get(pk=config.pk).api_key_encrypted == SECRET


def test_old_keys_still_decrypt_after_a_new_key_is_prepended(db):
    config = ProviderConfigFactory(api_key=SECRET)
    with override_settings(FIELD_ENCRYPTION_KEY=[Fernet.generate_key().decode(), *current_keys()]):
        assert ProviderConfig.objects.get(pk=config.pk).api_key_encrypted == SECRET


def test_rotation_reencrypts_every_row_under_the_newest_key(db):
    configs = [ProviderConfigFactory(api_key=f"{SECRET}-{n}", is_active=False) for n in range(3)]
    old_key = current_keys()[0]
    new_key = Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEY=[new_key, old_key]):
        call_command("rotate_field_encryption", stdout=open("/dev/null", "w"))
    with override_settings(FIELD_ENCRYPTION_KEY=[new_key]):
        for n, config in enumerate(configs):
            raw = raw_key_column(config.pk)
            assert Fernet(new_key).decrypt(raw.encode()).decode() == f"{SECRET}-{n}"
            assert ProviderConfig.objects.get(pk=config.pk).api_key_encrypted == f"{SECRET}-{n}"


def test_rotation_reports_rows_no_key_can_open_and_leaves_them_alone(db):
    config = ProviderConfigFactory(api_key=SECRET)
    before = raw_key_column(config.pk)
    with override_settings(FIELD_ENCRYPTION_KEY=[Fernet.generate_key().decode()]):
        with pytest.raises(CommandError, match="1 value"):
            call_command(
                "rotate_field_encryption",
                stdout=open("/dev/null", "w"),
                stderr=open("/dev/null", "w"),
            )
    assert raw_key_column(config.pk) == before
