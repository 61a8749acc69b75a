"""Guessing passwords: the login form locks a username from an address, the token endpoint is throttled."""

from django.urls import reverse
from rest_framework.test import APIClient


def login(client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_the_login_form_locks_after_repeated_wrong_passwords_even_for_the_right_one(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "owner", "wrong-password").status_code == 200  # the form, with its error
    locked = login(client, "owner", "wrong-password")
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.content.decode()
    right = login(client, "owner", "owner-pass-123")
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_signing_in_clears_the_count_of_wrong_passwords(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "owner", "wrong-password")
    assert login(client, "owner", "owner-pass-123").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "owner", "wrong-password").status_code == 200
    assert login(client, "owner", "owner-pass-123").status_code == 302


def test_the_token_endpoint_answers_429_to_a_password_guesser(owner):
    api = APIClient()
    answers = [
        api.post(reverse("api:token"), {"username": "owner", "password": f"guess-{n}"}).status_code for n in range(30)
    ]
    assert answers[0] == 400 and 429 in answers
    right = api.post(reverse("api:token"), {"username": "owner", "password": "owner-pass-123"})
    assert right.status_code == 429
    assert "throttled" in right.json()["detail"] and int(right["Retry-After"]) > 0
