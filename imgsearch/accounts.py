"""Guessed passwords: who gets locked, who gets slowed down, and what they see (a 429 with a sentence:
JSON on the API, a page on the web).

Two limits, both on django-axes' record of failed sign-ins (AccessAttempt, one row per name, address
and browser):
- LOGIN_FAILURE_LIMIT wrong passwords for a name from one address lock that address out of that name
  for LOGIN_LOCKOUT_MINUTES (AXES_LOCKOUT_PARAMETERS). A stranger's guesses never lock the owner,
  who signs in from another address.
- Guessing one name from many addresses (a botnet spraying) meets the per-account slow-down: past
  LOGIN_SLOWDOWN_AFTER wrong passwords for the name from anywhere within the cool-off, each sign-in to
  it waits 1 s, 2 s, 4 s, ... (at most SLOWDOWN_MAX_SECONDS) after the last failure. Never a hard
  lock; and addresses the account has signed in from before (axes' AccessLog) are not slowed, so the
  owner at home is not kept out by the spraying.
"""

import math
from datetime import timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from gallery.tokens import tokens_revoke_all
from imgsearch.proxies import client_address

SLOWDOWN_MAX_SECONDS = 300
# An address the account signed in from within this long is the owner's: never slowed down.
KNOWN_ADDRESS_DAYS = 90


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many wrong passwords for this account from your address. Try again in {minutes} minutes, "
        "or reset your password."
    )


def slowdown_message(seconds: int) -> str:
    return (
        "Sign-ins to this account are slowed down after many wrong passwords from several addresses. "
        f"Try again in {seconds} seconds, or reset your password."
    )


def slowdown_seconds(request: HttpRequest, credentials: dict | None = None) -> int:
    """How long a sign-in to the account named in `credentials` (or the POST) must still wait; 0 when
    it need not (few failures for it, the wait is over, or the address is one it signed in from)."""
    username = lockout_username(request, credentials)
    if not username:
        return 0
    window_start = timezone.now() - settings.AXES_COOLOFF_TIME
    failures = AccessAttempt.objects.filter(username=username, attempt_time__gte=window_start).aggregate(
        count=Sum("failures_since_start"), last=Max("attempt_time")
    )
    excess = (failures["count"] or 0) - settings.LOGIN_SLOWDOWN_AFTER
    if excess < 0:
        return 0
    wait = min(2**excess, SLOWDOWN_MAX_SECONDS)
    remaining = (failures["last"] + timedelta(seconds=wait) - timezone.now()).total_seconds()
    if remaining <= 0:
        return 0
    known = AccessLog.objects.filter(
        username=username,
        ip_address=client_address(request),
        attempt_time__gte=timezone.now() - timedelta(days=KNOWN_ADDRESS_DAYS),
    )
    return 0 if known.exists() else math.ceil(remaining)


class SlowDownHandler(AxesDatabaseHandler):
    """django-axes' database handler (AXES_HANDLER) with the per-account slow-down beside its per-address
    lock: a slowed sign-in is refused like a locked one, on the sign-in page, the admin's and the API."""

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        return super().is_locked(request, credentials) or slowdown_seconds(request, credentials) > 0


# django-axes keeps a username of at most this many characters with each failed sign-in.
LOCKOUT_USERNAME_CHARS = 255


def lockout_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """django-axes' AXES_USERNAME_CALLABLE: the name a sign-in was tried with, cut to what its log of
    failures holds (no account has a longer name; before, a longer one was a server error)."""
    username = (credentials or {}).get("username") if credentials else request.POST.get("username")
    return None if username is None else str(username)[:LOCKOUT_USERNAME_CHARS]


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: which limit refused the sign-in, and when to try again."""
    seconds = slowdown_seconds(request, credentials)
    if seconds:
        message = slowdown_message(seconds)
    else:
        message, seconds = lockout_message(), int(settings.AXES_COOLOFF_TIME.total_seconds())
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": message}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(seconds)
    return response


class RevokeTokensOnPasswordChange:
    """Listed in AUTH_PASSWORD_VALIDATORS for Django's `password_changed` hook, which every way of
    changing a password reaches (the settings form, a reset link, the admin, `changepassword`): the
    person's API tokens are revoked then. Their other browser sessions end by themselves (Django
    checks each session against the password hash). It never refuses a password."""

    def validate(self, password, user=None) -> None:
        return None

    def password_changed(self, password, user=None) -> None:
        if user is not None and user.pk is not None:
            tokens_revoke_all(user=user)

    def get_help_text(self) -> str:
        return "Changing your password signs you out everywhere else and revokes your API tokens."
