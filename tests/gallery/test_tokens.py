"""API tokens (django-rest-knox): hashed at rest, expiring, named, listed and revoked by their owner,
and revoked with every other session when the password changes."""

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from gallery.models import ApiToken
from gallery.tokens import token_create


def api_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def obtain(username="owner", password="owner-pass-123", **extra):
    return APIClient().post(reverse("api:token"), {"username": username, "password": password, **extra}, format="json")


def test_only_a_hash_of_the_token_is_stored(owner):
    token = obtain(name="backup script").json()["token"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM gallery_apitoken")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert "backup script" in stored and token not in stored and token[15:] not in stored


def test_a_token_can_be_named_given_a_lifetime_and_listed_by_its_owner(owner, friend):
    answer = obtain(name="  phone   app ", days=7).json()
    assert answer["name"] == "phone app" and answer["current"] is False
    assert (
        timedelta(days=6, hours=23)
        < timezone.datetime.fromisoformat(answer["expiry"]) - timezone.now()
        <= timedelta(days=7)
    )
    token_create(user=friend, name="friend's")
    listed = api_with(answer["token"]).get(reverse("api:tokens")).json()
    assert [(item["name"], item["key"], item["current"]) for item in listed] == [("phone app", answer["key"], True)]
    assert "token" not in listed[0]


def test_an_expired_token_is_refused(owner):
    token_row, token = token_create(user=owner, name="old", days=1)
    assert api_with(token).get(reverse("api:images")).status_code == 200
    ApiToken.objects.filter(pk=token_row.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    response = api_with(token).get(reverse("api:images"))
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"


def test_an_owner_revokes_one_token_and_not_another_persons(owner, friend):
    mine, other = token_create(user=owner, name="a")[1], token_create(user=owner, name="b")[1]
    friends_row, friends = token_create(user=friend, name="friend's")
    api = api_with(mine)
    assert api.delete(reverse("api:token_detail", args=[friends_row.token_key])).status_code == 404
    assert api_with(friends).get(reverse("api:images")).status_code == 200
    assert api.delete(reverse("api:token_detail", args=[other[:15]])).status_code == 204
    assert api_with(other).get(reverse("api:images")).status_code == 401
    assert api.get(reverse("api:images")).status_code == 200


def test_lifetimes_and_counts_are_bounded_with_a_sentence(owner, settings):
    assert "less than or equal to 365" in obtain(days=3650).json()["detail"]
    settings.API_TOKENS_PER_USER = 2
    assert obtain().status_code == obtain().status_code == 200
    refused = obtain()
    assert refused.status_code == 400 and "revoke one" in refused.json()["detail"]


def test_changing_the_password_revokes_tokens_and_other_sessions(client, owner):
    token = token_create(user=owner, name="script")[1]
    elsewhere = type(client)()
    elsewhere.force_login(owner)
    client.force_login(owner)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "owner-pass-123",
            "new_password1": "a-new-long-pass-456",
            "new_password2": "a-new-long-pass-456",
        },
    )
    assert response.status_code == 302
    assert api_with(token).get(reverse("api:images")).status_code == 401
    assert elsewhere.get(reverse("gallery:my_images")).status_code == 302  # back to the login page
    assert client.get(reverse("gallery:my_images")).status_code == 200  # the session that changed it stays


def test_a_password_reset_revokes_tokens_too(owner):
    token = token_create(user=owner, name="script")[1]
    owner.set_password("reset-by-link-789")
    owner.save()
    assert api_with(token).get(reverse("api:images")).status_code == 401


def test_the_settings_page_makes_shows_once_lists_and_revokes(client, owner, friend):
    token_create(user=friend, name="friend's token")
    client.force_login(owner)
    made = client.post(reverse("gallery:account_tokens"), {"name": "laptop sync", "days": "30"})
    page = made.content.decode()
    raw = made.context["new_token"][1]
    assert made.status_code == 200 and raw in page and "laptop sync" in page and "friend" not in page
    assert api_with(raw).get(reverse("api:images")).status_code == 200
    listed = client.get(reverse("gallery:account_tokens")).content.decode()
    assert raw[:15] in listed and raw not in listed
    revoked = client.post(reverse("gallery:account_token_revoke", args=[raw[:15]]), follow=True)
    assert "Token revoked" in revoked.content.decode()
    assert api_with(raw).get(reverse("api:images")).status_code == 401


@pytest.mark.parametrize("url", ["gallery:account_tokens", "gallery:account_tokens_revoke_all"])
def test_the_token_pages_need_a_login(client, url):
    response = client.post(reverse(url))
    assert response.status_code == 302 and reverse("login") in response["Location"]
