"""Headers that protect what a person sees: nothing signed-in is cached, browser features we do not use
are turned off, static files carry the same protections, and production answers only its own hosts."""

import os

from django.urls import reverse
from rest_framework.test import APIClient

from gallery.tokens import token_create


def test_what_a_signed_in_person_sees_is_cached_nowhere(client, owner, upload, colour_proposer):
    image = upload(owner).image
    client.force_login(owner)
    for url in (
        reverse("gallery:my_images"),
        reverse("gallery:account_tokens"),
        reverse("gallery:image_detail", args=[image.pk]),
    ):
        cache_control = client.get(url)["Cache-Control"]
        assert "no-store" in cache_control and "private" in cache_control, url
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=owner, name='headers')[1]}")
    assert "no-store" in api.get(reverse("api:images"))["Cache-Control"]
    # A thumbnail keeps its own, private, caching: it is the same bytes for an hour.
    assert client.get(reverse("gallery:image_thumbnail", args=[image.pk]))["Cache-Control"] == "private, max-age=3600"


def test_every_response_and_static_file_turns_off_browser_features_it_does_not_use(client):
    page = client.get(reverse("home"))
    assert "camera=()" in page["Permissions-Policy"] and "geolocation=()" in page["Permissions-Policy"]
    script = client.get("/static/js/viewer.js")
    assert script.status_code == 200
    assert script["X-Frame-Options"] == "DENY" and "default-src 'none'" in script["Content-Security-Policy"]
    assert "camera=()" in script["Permissions-Policy"]


def test_production_answers_only_the_hosts_it_is_given():
    from imgsearch.settings import security

    if "ALLOWED_HOSTS" not in os.environ:  # the default, as a fresh install has it
        assert security.ALLOWED_HOSTS == ["127.0.0.1", "localhost"]
