"""POST /api/build/start is as strict as the provider endpoints (issue 15.16)."""

import pytest
from django_tasks_db.models import DBTaskResult

from build_loop.models import Build
from tests.llm_providers.api_support import assert_error

START = "/api/build/start"


@pytest.mark.parametrize(
    "extra",
    [{"tenant": "tenant_other"}, {"tenant_id": "tenant_other"}, {"promt": "typo"}, {"id": 1}],
)
def test_unknown_fields_are_a_400_naming_them(tenant_client, fake_llm, extra):
    response = tenant_client.post(START, {"prompt": "A shop.", **extra}, format="json")

    error = assert_error(response, 400, "validation_error")
    assert error["details"] == {name: ["Unknown field."] for name in extra}
    assert not Build.objects.exists()
    assert not DBTaskResult.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"prompt": 12345}, "prompt"),
        ({"prompt": True}, "prompt"),
        ({"prompt": 1.5}, "prompt"),
        ({"prompt": {"text": "x"}}, "prompt"),
        ({"prompt": "A shop.", "model": 4}, "model"),
        ({"prompt": "A shop.", "max_iterations": "3"}, "max_iterations"),
        ({"prompt": "A shop.", "max_iterations": True}, "max_iterations"),
        ({"prompt": "A shop.", "max_iterations": 2.0}, "max_iterations"),
    ],
)
def test_values_of_the_wrong_json_type_are_a_400_not_coerced(
    tenant_client, fake_llm, payload, field
):
    response = tenant_client.post(START, payload, format="json")

    error = assert_error(response, 400, "validation_error")
    assert field in error["details"]
    assert not Build.objects.exists()
