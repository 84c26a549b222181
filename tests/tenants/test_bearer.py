"""One bearer-key parser (tenants.authentication.bearer_key) for /api and /v1."""

import pytest
from rest_framework.exceptions import AuthenticationFailed

from tenants.authentication import bearer_key
from tests.factories import TenantAPIKeyFactory


@pytest.mark.parametrize(
    "header, key",
    [
        (None, None),
        ("", None),
        ("Token abc", None),
        ("Basic dXNlcjpwdw==", None),
        ("Bearer abc.def", "abc.def"),
        ("bearer abc.def", "abc.def"),
        ("BEARER   abc.def  ", "abc.def"),
        (b"Bearer abc.def", "abc.def"),
    ],
)
def test_the_key_of_a_bearer_header_and_none_for_other_schemes(header, key):
    assert bearer_key(header) == key


@pytest.mark.parametrize(
    "header, message",
    [
        ("Bearer", "Malformed Authorization header."),
        ("Bearer a b", "Malformed Authorization header."),
        ("Bearer ключ", "Invalid API key."),
        ("Bearer caf\u00e9", "Invalid API key."),
    ],
)
def test_a_bearer_header_without_one_ascii_key_is_refused(header, message):
    with pytest.raises(AuthenticationFailed) as caught:
        bearer_key(header)
    assert str(caught.value.detail) == message


GATEWAY = "/v1/models"
API = "/api/llm/provider/status"


@pytest.mark.parametrize(
    "header, message",
    [
        ("Bearer", "Malformed Authorization header."),
        ("Bearer a b", "Malformed Authorization header."),
        ("Bearer caf\u00e9", "Invalid API key."),
        ("Bearer abcdefgh.wrong", "Invalid API key."),
    ],
)
def test_api_and_v1_refuse_the_same_headers_with_the_same_message(client, db, header, message):
    TenantAPIKeyFactory()
    api = client.get(API, HTTP_AUTHORIZATION=header)
    v1 = client.get(GATEWAY, HTTP_AUTHORIZATION=header)
    assert (api.status_code, v1.status_code) == (401, 401)
    assert api.json()["error"]["message"] == message
    assert v1.json()["error"]["message"] == message


def test_api_and_v1_accept_the_same_key_in_any_scheme_case(client, db):
    key = TenantAPIKeyFactory().plain_key
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert client.get(API, HTTP_AUTHORIZATION=f"{scheme} {key}").status_code == 200
        assert client.get(GATEWAY, HTTP_AUTHORIZATION=f"{scheme} {key}").status_code != 401
