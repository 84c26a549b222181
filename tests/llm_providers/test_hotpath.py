"""The hand-built lookup and INSERT agree with the ORM on every field."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from llm_providers.engine.resolution import active_config
from llm_providers.models import ProviderConfig, UsageLog
from llm_providers.usage.writes import insert_usage_log
from tests.factories import ProviderConfigFactory


def test_active_config_matches_the_orm_lookup(tenant, other_tenant):
    ProviderConfigFactory(tenant=tenant, is_active=False, api_key="sk-test-fake-key-0001")
    active = ProviderConfigFactory(
        tenant=tenant,
        provider="groq",
        default_model="llama-3.1-8b-instant",
        api_key="gsk_test_fake_key_0003",
        metadata={"timeout": 5, "pricing": {"input_per_mtok": "0.1"}},
    )
    ProviderConfigFactory(tenant=other_tenant, api_key="sk-test-fake-key-0009")

    found = active_config("tenant_123")
    expected = ProviderConfig.objects.for_tenant(tenant).active().get()

    assert found.pk == active.pk == expected.pk
    assert model_to_dict(found) == model_to_dict(expected)
    assert found.api_key_encrypted == "gsk_test_fake_key_0003"
    assert (found.created_at, found.updated_at) == (expected.created_at, expected.updated_at)
    assert found.tenant_is_active is True


def test_active_config_is_none_without_an_active_config(tenant, other_tenant):
    ProviderConfigFactory(tenant=other_tenant, api_key="sk-test-fake-key-0009")
    assert active_config("tenant_123") is None


def _row_with_every_field(tenant, config) -> UsageLog:
    return UsageLog(
        tenant_id=tenant.pk,
        provider_config_id=config.pk,
        provider="openai",
        model="gpt-4o-mini",
        endpoint="chat",
        tokens_used=17,
        prompt_tokens=12,
        completion_tokens=5,
        cache_read_tokens=3,
        cache_write_tokens=2,
        reasoning_tokens=1,
        cost_usd=Decimal("0.00000480"),
        latency_ms=12,
        success=False,
        error_type="rate_limit",
        error_message="slow down ✋",
        status_code=429,
        metadata={"attempts": 3, "nested": {"a": [1, 2]}, "text": "ünïcode"},
    )


def test_insert_usage_log_round_trips_every_field(tenant):
    config = ProviderConfigFactory(tenant=tenant, api_key="sk-test-fake-key-0001")
    row = _row_with_every_field(tenant, config)

    pk = insert_usage_log(row)

    stored = UsageLog.objects.get(pk=pk)
    assert model_to_dict(stored) == model_to_dict(row)
    assert stored.created_at == row.created_at and stored.created_at is not None
    assert stored.cost_usd == Decimal("0.00000480")
    assert stored.provider_config_id == config.pk


def test_insert_usage_log_ids_increase(tenant):
    ids = [
        insert_usage_log(
            UsageLog(tenant_id=tenant.pk, provider="local", endpoint="test", success=True)
        )
        for _ in range(3)
    ]
    assert ids == sorted(ids) and len(set(ids)) == 3


def _insert_sql(tenant) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        pk = insert_usage_log(
            UsageLog(tenant_id=tenant.pk, provider="local", endpoint="test", success=True)
        )
    return pk, queries[-1]["sql"]


def test_usage_insert_waits_for_the_wal_flush_by_default(tenant):
    pk, sql = _insert_sql(tenant)
    assert UsageLog.objects.filter(pk=pk).exists()
    assert "synchronous_commit" not in sql


@pytest.mark.django_db(transaction=True)
def test_async_commit_opt_in_applies_to_the_usage_insert_alone_on_postgresql(tenant, settings):
    settings.LLM_USAGE_ASYNC_COMMIT = True
    if connection.vendor == "postgresql":
        # The session's own value, set explicitly: CI's throwaway server runs with
        # synchronous_commit=off as its default.
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = on")
    pk, sql = _insert_sql(tenant)
    assert UsageLog.objects.filter(pk=pk).exists()
    if connection.vendor == "postgresql":
        assert "set_config('synchronous_commit', 'off', true)" in sql
        with connection.cursor() as cursor:  # transaction-local: the session keeps its own
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"
            cursor.execute("RESET synchronous_commit")
    else:  # SQLite has no such setting: the statement is unchanged
        assert "synchronous_commit" not in sql


@pytest.mark.django_db(transaction=True)
def test_async_commit_opt_in_leaves_a_callers_transaction_alone(tenant, settings):
    settings.LLM_USAGE_ASYNC_COMMIT = True
    with transaction.atomic():
        pk, sql = _insert_sql(tenant)
    assert UsageLog.objects.filter(pk=pk).exists()
    assert "synchronous_commit" not in sql


def _rows(tenant, config):
    full = _row_with_every_field(tenant, config)
    bare = UsageLog(tenant_id=tenant.pk, provider="local", endpoint="test", success=False)
    odd = UsageLog(  # values of other types than the fields' own: converted by the field
        tenant_id=tenant.pk,
        provider="local",
        endpoint="test",
        tokens_used=Decimal("4"),
        latency_ms=True,
        success=1,
        cost_usd=0,
        metadata=None,
    )
    return [full, bare, odd]


@pytest.mark.parametrize("keep_created_at", [False, True])
def test_the_insert_parameters_are_the_fields_own_conversion(tenant, keep_created_at):
    """insert_values skips a field's conversion only for a value it would pass unchanged:
    its parameters are exactly get_db_prep_save's, on this database."""
    from llm_providers.usage.writes import _INSERT_FIELDS, insert_values

    config = ProviderConfigFactory(tenant=tenant, api_key="sk-test-fake-key-0001")
    rows, same_rows = _rows(tenant, config), _rows(tenant, config)
    if keep_created_at:  # a spooled row's own time
        for row in (*rows, *same_rows):
            row.created_at = datetime(2026, 12, 1, 20, 10, 26, 123456, tzinfo=UTC)

    values = insert_values(rows, connection, keep_created_at=keep_created_at)

    expected = [
        f.get_db_prep_save(
            getattr(row, f.attname) if keep_created_at else f.pre_save(row, True), connection
        )
        for row in same_rows
        for f in _INSERT_FIELDS
    ]
    assert len(values) == len(expected) == len(rows) * len(_INSERT_FIELDS)
    for i, (value, wanted) in enumerate(zip(values, expected, strict=True)):
        field = _INSERT_FIELDS[i % len(_INSERT_FIELDS)]
        assert type(value) is type(wanted), field.name
        if field.name != "created_at" or keep_created_at:  # else "now", on each side
            # psycopg's Jsonb wrapper compares by identity: compare what it wraps.
            assert getattr(value, "obj", value) == getattr(wanted, "obj", wanted), field.name
