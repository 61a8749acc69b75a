"""Guessing passwords: the login form locks a username from an address, guessing one account from many
addresses slows its sign-ins down, the token endpoint is throttled."""

from datetime import timedelta

from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
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


def spray(client, settings, failures: int, first: int = 0) -> list[int]:
    """Wrong passwords for "owner", each from an address of its own (behind a trusted proxy)."""
    settings.TRUSTED_PROXIES = 1
    return [
        client.post(
            reverse("login"), {"username": "owner", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        ).status_code  # fmt: skip
        for n in range(first, first + failures)
    ]


def test_guessing_one_account_from_many_addresses_slows_its_sign_ins_down_without_locking_it(client, owner, settings):
    from axes.models import AccessAttempt

    settings.LOGIN_SLOWDOWN_AFTER = 8
    # No address reaches its own limit; before, 8 addresses x 4 guesses each went on forever.
    assert spray(client, settings, settings.LOGIN_SLOWDOWN_AFTER) == [200] * settings.LOGIN_SLOWDOWN_AFTER
    slowed = client.post(reverse("login"), {"username": "owner", "password": "owner-pass-123"},
                         HTTP_X_FORWARDED_FOR="192.0.2.44")  # fmt: skip
    assert slowed.status_code == 429 and "slowed down" in slowed.content.decode()
    assert 1 <= int(slowed["Retry-After"]) <= 2  # the first wait: a second
    api = APIClient().post(reverse("api:token"), {"username": "owner", "password": "owner-pass-123"},
                           HTTP_X_FORWARDED_FOR="192.0.2.45")  # fmt: skip
    assert api.status_code == 429 and "slowed down" in api.json()["detail"]
    # The refused attempts did not count: once the wait has passed (the record made 2 s older), the
    # right password signs in: a slow-down, not a lock.
    assert AccessAttempt.objects.filter(username="owner").count() == settings.LOGIN_SLOWDOWN_AFTER
    for attempt in AccessAttempt.objects.filter(username="owner"):
        AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=attempt.attempt_time - timedelta(seconds=2))
    signed_in = client.post(reverse("login"), {"username": "owner", "password": "owner-pass-123"},
                            HTTP_X_FORWARDED_FOR="192.0.2.44")  # fmt: skip
    assert signed_in.status_code == 302


def test_the_wait_doubles_with_each_further_failure_up_to_five_minutes(client, owner, settings):
    from axes.models import AccessAttempt

    from imgsearch.accounts import SLOWDOWN_MAX_SECONDS, slowdown_seconds

    settings.LOGIN_SLOWDOWN_AFTER = 3
    spray(client, settings, 3)
    request = RequestFactory().post("/accounts/login/", {"username": "owner"}, REMOTE_ADDR="192.0.2.9")
    waits = [slowdown_seconds(request)]
    for extra in range(1, 12):
        # One more failure on record, as an address past its wait would leave it.
        AccessAttempt.objects.create(username="owner", ip_address=f"198.51.100.{extra}", user_agent="",
                                     failures_since_start=1, attempt_time=timezone.now())  # fmt: skip
        waits.append(slowdown_seconds(request))
    assert waits[:5] == [1, 2, 4, 8, 16]  # seconds after the last failure, rounded up
    assert max(waits) == SLOWDOWN_MAX_SECONDS


def test_the_owner_at_an_address_they_signed_in_from_before_is_not_slowed(client, owner, settings):
    settings.TRUSTED_PROXIES = 1
    home = "192.0.2.10"
    assert client.post(reverse("login"), {"username": "owner", "password": "owner-pass-123"},
                       HTTP_X_FORWARDED_FOR=home).status_code == 302  # fmt: skip
    client.logout()
    settings.LOGIN_SLOWDOWN_AFTER = 4
    spray(client, settings, 6)
    elsewhere = client.post(reverse("login"), {"username": "owner", "password": "owner-pass-123"},
                            HTTP_X_FORWARDED_FOR="192.0.2.99")  # fmt: skip
    assert elsewhere.status_code == 429
    at_home = client.post(reverse("login"), {"username": "owner", "password": "owner-pass-123"},
                          HTTP_X_FORWARDED_FOR=home)  # fmt: skip
    assert at_home.status_code == 302
