"""Sign-up refuses names people could mistake for others, and accounts made in bulk."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

PASSWORD = "a-long-pass-phrase-9"


def sign_up(client, username: str):
    return client.post(reverse("signup"), {"username": username, "password1": PASSWORD, "password2": PASSWORD})


@pytest.mark.parametrize(
    "username, reason",
    [
        ("ownеr", "look-alike"),  # the "е" is Cyrillic
        ("Admin", "reserved"),
        ("OWNER", "taken"),  # "owner" exists
        ("-dash-first", "starting and ending"),
        ("ｏｗｎｅｒ２", "taken"),  # full-width letters normalise (NFKC) to "owner2", which exists
    ],
)
def test_confusable_reserved_and_taken_names_are_refused_with_a_reason(client, owner, username, reason):
    get_user_model().objects.create_user("owner2", password="x-long-pass-phrase-1")
    response = sign_up(client, username)
    assert response.status_code == 200 and reason in response.content.decode()
    assert get_user_model().objects.count() == 2


def test_the_sign_up_page_states_the_name_rule_it_enforces(client, db):
    """The help offered Django's "150 characters or fewer. Letters, digits and @/./+/-/_ only." and
    then refused bob+photos@home for a rule it had not stated (issue 30, bug 9)."""
    page = client.get(reverse("signup")).content.decode()
    assert "150 characters" not in page and "@/./+/-/_" not in page
    assert "1-30 letters a-z, digits, dots, dashes or underscores" in page
    assert 'maxlength="30"' in page


def test_names_are_stored_folded_so_they_cannot_collide_by_case(client, db):
    assert sign_up(client, "Alice.Smith").status_code == 302
    assert get_user_model().objects.filter(username="alice.smith").exists()


def test_accounts_made_in_bulk_from_one_address_meet_a_429(client, db, settings):
    answers = []
    for n in range(settings.SIGNUP_RATE_PER_HOUR + 2):
        answers.append(sign_up(client, f"bot{n}").status_code)
        client.logout()  # the same address, signed out again: as a bot would
    assert answers[: settings.SIGNUP_RATE_PER_HOUR] == [302] * settings.SIGNUP_RATE_PER_HOUR
    assert answers[settings.SIGNUP_RATE_PER_HOUR :] == [429, 429]
    assert get_user_model().objects.count() == settings.SIGNUP_RATE_PER_HOUR


def test_a_forgotten_password_can_be_reset_by_email(client, db):
    import re

    from django.core import mail

    assert (
        client.post(
            reverse("signup"),
            {"username": "mira", "email": "mira@example.com", "password1": PASSWORD, "password2": PASSWORD},
        ).status_code
        == 302
    )
    client.logout()
    assert client.post(reverse("password_reset"), {"email": "mira@example.com"}).status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["mira@example.com"]
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode() and "Django administration" not in form.content.decode()
    new_password = "another-long-phrase-7"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert done.status_code == 302
    assert client.post(reverse("login"), {"username": "mira", "password": new_password}).status_code == 302


def test_the_reset_pages_are_the_apps_and_say_where_the_link_went(client, db, settings):
    """They were the Django admin's (its banner, a Home link to /admin/), and without a mail server
    still said "We've emailed you" (issue 30, bug 8)."""
    for name in ("password_reset", "password_reset_done", "password_reset_complete"):
        page = client.get(reverse(name)).content.decode()
        assert "Django administration" not in page and 'href="/admin/"' not in page, name
        assert "<title>" in page and "· imgsearch</title>" in page, name
    settings.EMAIL_HOST, settings.EMAIL_BACKEND = "", "django.core.mail.backends.console.EmailBackend"  # the default
    page = client.post(reverse("password_reset"), {"email": "mira@example.com"}, follow=True).content.decode()
    assert "emailed" not in page and "This server sends no mail" in page
    settings.EMAIL_HOST, settings.EMAIL_BACKEND = "mail.example.com", "django.core.mail.backends.smtp.EmailBackend"
    page = client.get(reverse("password_reset_done")).content.decode()
    assert "If an account uses that address, a link to reset its password is on its way" in page


def test_mail_goes_to_the_log_unless_a_mail_server_is_configured():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = "import django; django.setup(); from django.conf import settings; print(settings.EMAIL_BACKEND)"
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "imgsearch.settings", "SECRET_KEY": "k" * 60}
    default = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    configured = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**env, "EMAIL_HOST": "smtp.example.com"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert default.stdout.strip().endswith("console.EmailBackend")
    assert configured.stdout.strip().endswith("smtp.EmailBackend")
