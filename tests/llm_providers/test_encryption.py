from django.db import connection

from llm_providers.models import ProviderConfig
from tests.factories import ProviderConfigFactory


def raw_key_column(config_id):
    with connection.cursor() as cursor:
        field = ProviderConfig._meta.pk
        cursor.execute(
            "SELECT api_key_encrypted FROM llm_provider_configs WHERE id = %s",
            [field.get_db_prep_value(config_id, connection)],
        )
        return cursor.fetchone()[0]


def test_key_is_ciphertext_at_rest(db):
    config = ProviderConfigFactory(api_key="sk-test-plaintext-secret-9876")
    raw = raw_key_column(config.pk)
    assert "sk-test-plaintext-secret" not in raw
    assert raw.startswith("gAAAA")  # a Fernet token
    assert ProviderConfig.objects.get(pk=config.pk).api_key_encrypted == (
        "sk-test-plaintext-secret-9876"
    )
