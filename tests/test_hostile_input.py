"""No input, however hostile, gets a 5xx: every URL pattern, walked with a catalogue of bad values in its
path, its query string and its form or JSON body, for an anonymous visitor, a signed-in person and
staff. What a bad value gets instead is a 4xx (or the page it was sent to, ignoring it)."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter
from django.urls.exceptions import NoReverseMatch

from gallery.albums import album_add_images, album_create, share_link_create
from gallery.tokens import token_create
from search.models import SavedSearch
from tests import images

# The catalogue (GUIDE.md, "Bad input, by rule"): NUL bytes, digits that pass str.isdigit() but not
# int(), numbers past any column's range, strings past any column's length, non-numbers where numbers
# go, and a few shapes that break naive parsers.
HOSTILE = ["\x00", "1\x00", "¹", "99999999999999999999", "-1", "abc", "1e400", "x" * 5000, "99999999999-01", "1,2,¹"]
# Every parameter name a view, form or serializer reads (a view ignores those it does not know).
PARAMETERS = [
    "page", "month", "before", "partial", "status", "visibility", "ids", "q", "similar", "region", "box_image", "box",
    "image_weight", "exclude_weight", "scope", "kind", "taken_from", "taken_to", "album", "camera", "favourites", "tag",
    "saved", "recent", "name", "new_album", "image_id", "image_ids", "username", "password", "days", "on", "action",
    "label", "is_public", "share_location", "confirm", "next", "email", "min_score", "page_size", "text", "region_id",
    "album_id", "key", "place",
]  # fmt: skip


def leaf_patterns(resolver: URLResolver, namespace: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            found += leaf_patterns(entry, inner)
        elif entry.name:
            found.append((namespace + entry.name, entry))
    return found


def urls_of(name: str, pattern: URLPattern, real: dict[str, object]) -> list[str]:
    """The pattern's URL with real values, then with each of its arguments made hostile in turn."""
    converters = getattr(pattern.pattern, "converters", {})
    if not converters:
        try:
            return [reverse(name)]
        except NoReverseMatch:
            return []  # a regular expression with groups (the admin's): walked through its named kin
    good = {arg: real.get(arg, 1) for arg in converters}
    urls = []
    for variant in [{}] + [{arg: value} for arg in converters for value in hostile_path_values(converters[arg])]:
        try:
            urls.append(reverse(name, kwargs={**good, **variant}))
        except NoReverseMatch:
            continue  # the converter refuses the value: Django answers 404 without calling the view
    return urls


def hostile_path_values(converter) -> list[object]:
    if isinstance(converter, IntConverter):
        return [0, 10**20, 2**63]
    return ["\x00", "a\x00", "x" * 3000, "%00", "¹"]


@pytest.fixture
def library(owner, stranger, upload, colour_proposer):
    image = upload(owner, images.png(seed=1), name="one.png").image
    album = album_create(owner=owner, name="trip")
    album_add_images(album=album, image_ids=[image.pk])
    link = share_link_create(album=album, days=None)
    saved = SavedSearch.objects.create(owner=owner, name="red", params={"q": "red"}, description="red",
                                       last_viewed_at=image.created_at)  # fmt: skip
    key = token_create(user=owner, name="walk")[0].token_key
    staff = get_user_model().objects.create_superuser("staffer", "staff@example.com", "staffer-pass-123")
    real = {"pk": image.pk, "image_id": image.pk, "token": link.token, "key": key, "user_id": stranger.pk,
            "link_id": link.pk, "object_id": image.pk}  # fmt: skip
    return {"image": image, "album": album, "saved": saved, "staff": staff, "real": real}


def crashed(url: str, response) -> bool:
    """A 5xx, except /readyz's 503 (JSON): that one means "not ready", which a test database without a
    worker is."""
    if url == reverse("readyz") and response.status_code == 503:
        return response["Content-Type"] != "application/json"
    return response.status_code >= 500


def server_errors(client: Client, urls: list[str], *, values: list[str], user=None) -> list[str]:
    failed = []
    for url in urls:
        for value in values:
            if user is not None:
                client.force_login(user)  # the walk also posts to "log out" and "change password"
            cache.clear()  # throttles would answer 429 before a view met the value
            AccessAttempt.objects.all().delete()  # and so would the sign-in lock
            params = dict.fromkeys(PARAMETERS, value)
            # Pages read forms; the API reads JSON (and forms, and takes PATCH and DELETE).
            as_json = {"content_type": "application/json"}
            requests = [("get", {"data": params}), ("post", {"data": params})]
            if url.startswith("/api/"):
                requests += [
                    ("post", {"data": params, **as_json}),
                    ("patch", {"data": params, **as_json}),
                    ("delete", {}),
                ]
            answers = []
            for method, options in requests:
                # A savepoint per request: a database error in one must not poison the test's transaction.
                with transaction.atomic():
                    response = getattr(client, method)(url, **options)
                answers.append((f"{method.upper()} {options.get('content_type', '')}".strip(), response))
            failed += [f"{method} {url} {value[:20]!r}: {response.status_code}"
                       for method, response in answers if crashed(url, response)]  # fmt: skip
    return failed


# The admin's pages are many and slow to render: staff walks them in the slow set.
@pytest.mark.parametrize("who", ["anonymous", "owner", pytest.param("staff", marks=pytest.mark.slow)])
def test_no_hostile_value_anywhere_gets_a_server_error(who, owner, library, settings):
    client = Client(raise_request_exception=False)
    user = {"anonymous": None, "owner": owner, "staff": library["staff"]}[who]
    patterns = leaf_patterns(get_resolver())
    assert len(patterns) > 100  # the walk sees every app, the admin's pages included
    real = library["real"]
    urls = {name: urls_of(name, pattern, real) for name, pattern in patterns}
    # Each URL with every parameter hostile; the hostile variants of its path with a plain query.
    failed = server_errors(client, sorted({found[0] for found in urls.values() if found}), values=HOSTILE, user=user)
    failed += server_errors(
        client, sorted({url for found in urls.values() for url in found[1:]}), values=["1"], user=user
    )
    assert failed == [], "\n".join(failed)
