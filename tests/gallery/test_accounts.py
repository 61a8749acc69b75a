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


def test_a_guesser_writing_a_new_x_forwarded_for_each_time_is_still_one_client(owner):
    api = APIClient()
    answers = [
        api.post(
            reverse("api:token"), {"username": "owner", "password": f"guess-{n}"}, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        ).status_code  # fmt: skip
        for n in range(30)
    ]
    assert 429 in answers  # before, every request counted as a new address: 30 answers, no 429


def test_behind_a_trusted_proxy_each_client_has_its_own_lock_and_budget(client, owner, settings):
    settings.TRUSTED_PROXIES = 1  # nginx appends the address it saw; the request arrives from 127.0.0.1
    stranger, victim = "198.51.100.7", "192.0.2.44"
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            reverse("login"), {"username": "owner", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {stranger}"
        )
    locked = client.post(reverse("login"), {"username": "owner", "password": "owner-pass-123"},
                         HTTP_X_FORWARDED_FOR=stranger)  # fmt: skip
    assert locked.status_code == 429  # the guesser's own address is locked for this name
    # The owner, at another address behind the same proxy, is not locked out by a stranger's guesses.
    signed_in = client.post(reverse("login"), {"username": "owner", "password": "owner-pass-123"},
                            HTTP_X_FORWARDED_FOR=victim)  # fmt: skip
    assert signed_in.status_code == 302


def test_a_locked_account_on_the_api_answers_429_even_with_the_right_password(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "owner", "wrong-password")
    from django.core.cache import cache

    cache.clear()  # the token throttle's count: only the lock speaks here
    response = APIClient().post(reverse("api:token"), {"username": "owner", "password": "owner-pass-123"})
    assert response.status_code == 429 and "Too many wrong passwords" in response.json()["detail"]
