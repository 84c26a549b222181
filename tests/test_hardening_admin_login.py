"""The admin login locks out a user name and address after repeated failures (issue 15.15)."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "Right-Pass-4821"


@pytest.fixture
def operator(db, settings):
    settings.AXES_FAILURE_LIMIT = 5
    return get_user_model().objects.create_superuser("operator", "op@example.com", PASSWORD)


def attempt(password, *, address="192.0.2.10", username="operator"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": username, "password": password})
    return response, client


def logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_the_right_password_works(operator):
    response, client = attempt(PASSWORD)
    assert response.status_code == 302
    assert logged_in(client)


def test_after_five_failures_even_the_right_password_is_refused(operator):
    for _ in range(5):
        response, _ = attempt("wrong")
        assert response.status_code in (200, 429)  # the form again, then the lockout

    response, client = attempt(PASSWORD)

    assert response.status_code == 429
    assert not logged_in(client)


def test_four_failures_do_not_lock_and_a_success_resets_the_count(operator):
    for _ in range(4):
        assert attempt("wrong")[0].status_code == 200
    assert attempt(PASSWORD)[0].status_code == 302
    for _ in range(4):
        assert attempt("wrong")[0].status_code == 200

    response, client = attempt(PASSWORD)
    assert response.status_code == 302 and logged_in(client)


def test_the_lockout_is_per_address_so_the_operator_is_not_locked_out_everywhere(operator):
    for _ in range(5):
        attempt("wrong", address="198.51.100.7")

    assert attempt(PASSWORD, address="198.51.100.7")[0].status_code == 429
    response, client = attempt(PASSWORD, address="192.0.2.10")
    assert response.status_code == 302 and logged_in(client)


def test_an_operator_can_lift_a_lockout(operator):
    for _ in range(5):
        attempt("wrong")
    assert attempt(PASSWORD)[0].status_code == 429

    call_command("axes_reset", verbosity=0)

    response, client = attempt(PASSWORD)
    assert response.status_code == 302 and logged_in(client)
