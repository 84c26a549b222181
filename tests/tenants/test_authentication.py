from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from tenants.models import TenantAPIKey
from tenants.services import api_key_create, api_key_revoke
from tests.factories import TenantAPIKeyFactory, TenantFactory


class WhoAmI(APIView):
    def get(self, request):
        return Response({"tenant": request.user.tenant.pk})


def call(authorization=None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    request = APIRequestFactory().get("/whoami", **headers)
    return WhoAmI.as_view()(request)


def test_a_valid_key_resolves_its_tenant(db):
    key = TenantAPIKeyFactory(tenant=TenantFactory(id="tenant_123"))
    response = call(f"Bearer {key.plain_key}")
    assert response.status_code == 200
    assert response.data == {"tenant": "tenant_123"}


def test_only_a_hash_of_the_key_is_stored(db):
    key = TenantAPIKeyFactory()
    stored = TenantAPIKey.objects.get(pk=key.pk)
    secret = key.plain_key.split(".", 1)[1]
    assert secret not in stored.hashed_key
    assert secret not in stored.pk
    assert key.plain_key.startswith(stored.prefix + ".")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer a b", "Token abc", "Bearer not-a-key", "Bearer abcdefgh.wrong"],
)
def test_missing_or_malformed_credentials_get_401(db, authorization):
    TenantAPIKeyFactory()
    response = call(authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_right_prefix_with_wrong_secret_gets_401(db):
    key = TenantAPIKeyFactory()
    prefix = key.plain_key.split(".", 1)[0]
    assert call(f"Bearer {prefix}.{'x' * 32}").status_code == 401


def test_revoked_key_gets_401(db):
    key = TenantAPIKeyFactory()
    api_key_revoke(api_key=key)
    assert call(f"Bearer {key.plain_key}").status_code == 401


def test_expired_key_gets_401(db):
    tenant = TenantFactory()
    api_key, plain = api_key_create(tenant=tenant, expires_at=timezone.now() - timedelta(seconds=1))
    assert call(f"Bearer {plain}").status_code == 401


def test_key_with_future_expiry_works(db):
    tenant = TenantFactory()
    api_key, plain = api_key_create(tenant=tenant, expires_at=timezone.now() + timedelta(days=1))
    assert call(f"Bearer {plain}").status_code == 200


def test_key_of_a_disabled_tenant_gets_401(db):
    key = TenantAPIKeyFactory(tenant=TenantFactory(is_active=False))
    assert call(f"Bearer {key.plain_key}").status_code == 401
