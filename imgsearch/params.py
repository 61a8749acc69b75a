"""Values people send in URLs, query strings and forms, parsed in one place.

Every id, number and name a view reads straight from a request goes through these (or through a
form or serializer, which do the same): anything else is a BadParameter, which
imgsearch.middleware.HostileInput answers with a 400 and its sentence (JSON under /api/, a page
elsewhere). Django's own form fields do the parsing, so "¹" is not a number, a NUL byte is not text,
and an id is a positive database key. A NUL byte in the path or the query string is refused before
any view runs.
"""

from collections.abc import Iterable

from django import forms
from django.core.exceptions import BadRequest, ValidationError

# The largest database key (a PostgreSQL bigint): a larger "id" names nothing and fits no query.
MAX_ID = 2**63 - 1
# Longer than anything a person types into a field; services check their own, tighter lengths.
MAX_TEXT = 10_000


class BadParameter(BadRequest):
    """A value a person sent cannot be used; str(error) says which and why."""


def _parsed(field: forms.Field, value: object, name: str):
    try:
        return field.clean(value)
    except ValidationError as error:
        raise BadParameter(f"{name}: {' '.join(error.messages)}") from None


def param_id(value: str | None, *, name: str) -> int | None:
    """A database key, or None when the value is missing or blank."""
    return _parsed(forms.IntegerField(required=False, min_value=1, max_value=MAX_ID), value, name)


def param_ids(values: Iterable[str], *, name: str) -> list[int]:
    """Database keys, in order; a value that is not one is refused, not skipped."""
    field = forms.IntegerField(min_value=1, max_value=MAX_ID)
    return [_parsed(field, value, name) for value in values]


def param_int(value: str | None, *, name: str, minimum: int, maximum: int) -> int | None:
    """A whole number in [minimum, maximum], or None when the value is missing or blank."""
    return _parsed(forms.IntegerField(required=False, min_value=minimum, max_value=maximum), value, name)


def param_text(value: str | None, *, name: str, max_length: int = MAX_TEXT) -> str:
    """Text with its surrounding spaces stripped ("" when missing); no NUL byte, at most max_length."""
    return _parsed(forms.CharField(required=False, max_length=max_length), value, name)


def has_nul(text: str) -> bool:
    return "\x00" in text
