"""What a locked-out login sees: a 429 with a sentence (JSON on the API, a page on the web)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from gallery.tokens import tokens_revoke_all


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many wrong passwords for this account from your address. Try again in {minutes} minutes, "
        "or reset your password."
    )


# django-axes keeps a username of at most this many characters with each failed sign-in.
LOCKOUT_USERNAME_CHARS = 255


def lockout_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """django-axes' AXES_USERNAME_CALLABLE: the name a sign-in was tried with, cut to what its log of
    failures holds (no account has a longer name; before, a longer one was a server error)."""
    username = (credentials or {}).get("username") if credentials else request.POST.get("username")
    return None if username is None else str(username)[:LOCKOUT_USERNAME_CHARS]


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": lockout_message()}, status=429)
    return render(request, "registration/locked_out.html", {"message": lockout_message()}, status=429)


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
