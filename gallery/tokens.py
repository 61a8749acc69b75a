"""API tokens: made, listed and revoked by their owner. django-rest-knox stores a hash of each
token, never the token; a token is shown once, when made, and expires."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from gallery.models import ApiToken

# The lifetimes a person can choose, in days (the API accepts any whole number up to the last).
LIFETIME_CHOICES = (7, 30, 90, 365)


class TokenRefused(ValueError):
    """A token that cannot be made; the message is the sentence a person sees."""


def tokens_of(user) -> QuerySet[ApiToken]:
    """`user`'s tokens that still work, newest first."""
    return ApiToken.objects.filter(user=user).filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()))


def token_create(*, user, name: str = "", days: int | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`: the stored row and the token itself (shown once, never stored)."""
    days = settings.API_TOKEN_DAYS if days is None else days
    if not 1 <= days <= LIFETIME_CHOICES[-1]:
        raise TokenRefused(f"A token lives from 1 to {LIFETIME_CHOICES[-1]} days, not {days}.")
    if tokens_of(user).count() >= settings.API_TOKENS_PER_USER:
        raise TokenRefused(
            f"You already have {settings.API_TOKENS_PER_USER} API tokens; revoke one you no longer use first."
        )
    name = " ".join(name.split())[:100] or f"Token of {timezone.localdate():%Y-%m-%d}"
    return ApiToken.objects.create(user=user, expiry=timedelta(days=days), name=name)


def token_revoke(*, user, key: str) -> bool:
    """Revoke `user`'s token named by its key (its first characters). False if there is none."""
    deleted, _ = ApiToken.objects.filter(user=user, token_key=key).delete()
    return deleted > 0


def tokens_revoke_all(*, user) -> int:
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    return deleted
