"""Sign-up refuses names people could mistake for others, and accounts made in bulk."""
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

PASSWORD = "a-long-pass-phrase-9"


def sign_up(client, username: str):
    return client.post(reverse("signup"), {"username": username, "password1": PASSWORD, "password2": PASSWORD})


@pytest.mark.parametrize("username, reason", [
    ("ownеr", "look-alike"),  # the "е" is Cyrillic
    ("Admin", "reserved"),
    ("OWNER", "taken"),  # "owner" exists
    ("-dash-first", "starting and ending"),
    ("ｏｗｎｅｒ２", "taken"),  # full-width letters normalise (NFKC) to "owner2", which exists
])
def test_confusable_reserved_and_taken_names_are_refused_with_a_reason(client, owner, username, reason):
    get_user_model().objects.create_user("owner2", password="x-long-pass-phrase-1")
    response = sign_up(client, username)
    assert response.status_code == 200 and reason in response.content.decode()
    assert get_user_model().objects.count() == 2


def test_names_are_stored_folded_so_they_cannot_collide_by_case(client, db):
    assert sign_up(client, "Alice.Smith").status_code == 302
    assert get_user_model().objects.filter(username="alice.smith").exists()


def test_accounts_made_in_bulk_from_one_address_meet_a_429(client, db, settings):
    answers = []
    for n in range(settings.SIGNUP_RATE_PER_HOUR + 2):
        answers.append(sign_up(client, f"bot{n}").status_code)
        client.logout()  # the same address, signed out again: as a bot would
    assert answers[: settings.SIGNUP_RATE_PER_HOUR] == [302] * settings.SIGNUP_RATE_PER_HOUR
    assert answers[settings.SIGNUP_RATE_PER_HOUR:] == [429, 429]
    assert get_user_model().objects.count() == settings.SIGNUP_RATE_PER_HOUR
