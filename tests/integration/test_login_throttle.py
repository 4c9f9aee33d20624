"""Logins are throttled (django-axes, limits from settings): after LOGIN_FAILURE_LIMIT wrong passwords
for one username from one address, even the right password is refused until the cool-off passes."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ..conftest import make_user

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-only"
LIMIT = 3


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=10)


@pytest.fixture
def alice(db):
    return make_user("alice", PASSWORD)


def let_cool_off_pass(minutes=11):
    """Moves the recorded failures back in time, as if the cool-off had passed."""
    from axes.models import AccessAttempt

    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= timedelta(minutes=minutes)
        attempt.save(update_fields=["attempt_time"])


def page_login(client, password, username="alice"):
    return client.post(reverse("login"), {"username": username, "password": password})


def token_login(client, password, username="alice"):
    return client.post(reverse("api:auth-token"), {"username": username, "password": password})


def test_login_page_locks_out_after_the_limit_even_with_the_right_password(alice):
    client = Client()
    for _ in range(LIMIT - 1):
        response = page_login(client, "wrong")
        assert response.status_code == 200  # the form again, with Django's own message
        assert "Please enter a correct username and password" in response.content.decode()

    locked = page_login(client, "wrong")
    assert locked.status_code == 429
    assert "Too many failed logins for this account from your address. Try again in 10 minutes." in (
        locked.content.decode()
    )
    assert locked["Retry-After"] == "600"

    right = page_login(client, PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("frontend:project-list")).status_code == 302  # still asked to log in

    let_cool_off_pass(minutes=9)
    assert page_login(client, PASSWORD).status_code == 429  # not yet

    let_cool_off_pass(minutes=2)
    after = page_login(client, PASSWORD)
    assert after.status_code == 302
    assert client.get(reverse("frontend:project-list")).status_code == 200


def test_token_endpoint_locks_out_after_the_limit_even_with_the_right_password(alice):
    client = APIClient()
    for _ in range(LIMIT - 1):
        assert token_login(client, "wrong").status_code == 400

    locked = token_login(client, "wrong")
    assert locked.status_code == 429
    assert locked.json()["detail"].startswith("Too many failed logins")
    assert locked["Retry-After"] == "600"

    right = token_login(client, PASSWORD)
    assert right.status_code == 429
    assert "token" not in right.json()

    let_cool_off_pass()
    after = token_login(client, PASSWORD)
    assert after.status_code == 200
    assert after.json()["token"]


def test_failures_on_the_page_and_the_api_count_together(alice):
    for _ in range(LIMIT - 1):
        page_login(Client(), "wrong")
    assert token_login(APIClient(), "wrong").status_code == 429
    assert page_login(Client(), PASSWORD).status_code == 429


def test_a_success_before_the_limit_resets_the_count(alice):
    client = Client()
    for _ in range(LIMIT - 1):
        page_login(client, "wrong")
    assert page_login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        assert page_login(client, "wrong").status_code == 200
    assert page_login(client, PASSWORD).status_code == 302


def test_one_locked_username_leaves_others_and_other_addresses_alone(alice):
    make_user("bob", PASSWORD)
    for _ in range(LIMIT):
        page_login(Client(), "wrong")
    assert page_login(Client(), PASSWORD).status_code == 429
    assert page_login(Client(), PASSWORD, username="bob").status_code == 302
    assert page_login(Client(REMOTE_ADDR="10.0.0.9"), PASSWORD).status_code == 302


def test_admin_login_is_throttled_too(alice):
    client = Client()
    url = reverse("admin:login")
    for _ in range(LIMIT - 1):
        assert client.post(url, {"username": "alice", "password": "wrong"}).status_code == 200
    locked = client.post(url, {"username": "alice", "password": "wrong"})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()


def test_code_that_logs_in_without_a_request_still_can(alice):
    assert Client().login(username="alice", password=PASSWORD)
    assert not Client().login(username="alice", password="wrong")
