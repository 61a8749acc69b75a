"""Nobody reaches another person's private image: not in lists, pages, files, thumbnails or the API."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from gallery.models import Image
from tests import images


@pytest.fixture
def private_image(owner, upload) -> Image:
    return Image.objects.get(pk=upload(owner, images.png(seed=7), name="secret.png").image.pk)


@pytest.fixture
def public_image(owner, upload) -> Image:
    image = Image.objects.get(pk=upload(owner, images.png(seed=8), name="shared.png").image.pk)
    image.is_public = True
    image.save()
    return image


def page_urls(image: Image) -> list[str]:
    return [
        reverse("gallery:image_detail", args=[image.pk]),
        reverse("gallery:image_file", args=[image.pk]),
        reverse("gallery:image_thumbnail", args=[image.pk]),
    ]


def api_urls(image: Image) -> list[str]:
    return [
        reverse("api:image", args=[image.pk]),
        reverse("api:image_file", args=[image.pk]),
        reverse("api:image_thumbnail", args=[image.pk]),
    ]


def test_the_owner_sees_their_private_image_everywhere(client, owner, private_image):
    client.force_login(owner)
    for url in page_urls(private_image):
        assert client.get(url).status_code == 200, url
    assert "secret.png" in client.get(reverse("gallery:my_images")).content.decode()


def test_a_stranger_gets_404_for_every_url_of_a_private_image(client, stranger, private_image):
    client.force_login(stranger)
    for url in page_urls(private_image):
        assert client.get(url).status_code == 404, url
    for url in [
        reverse("gallery:image_visibility", args=[private_image.pk]),
        reverse("gallery:image_delete", args=[private_image.pk]),
        reverse("gallery:image_retry", args=[private_image.pk]),
    ]:
        assert client.post(url, {"is_public": "1"}).status_code == 404, url
    private_image.refresh_from_db()
    assert not private_image.is_public


def test_a_private_image_never_appears_in_a_strangers_lists(client, stranger, private_image):
    client.force_login(stranger)
    for url in [reverse("gallery:my_images"), reverse("gallery:public_images")]:
        assert "secret.png" not in client.get(url).content.decode()


def test_anonymous_visitors_get_404_for_files_and_a_login_page_for_pages(client, private_image, public_image):
    for image in (private_image, public_image):
        assert client.get(reverse("gallery:image_file", args=[image.pk])).status_code == 404
        assert client.get(reverse("gallery:image_thumbnail", args=[image.pk])).status_code == 404
        response = client.get(reverse("gallery:image_detail", args=[image.pk]))
        assert response.status_code == 302 and reverse("login") in response["Location"]


def test_a_public_image_is_visible_to_others_but_only_its_owner_changes_it(client, friend, public_image):
    client.force_login(friend)
    for url in page_urls(public_image):
        assert client.get(url).status_code == 200, url
    assert "shared.png" in client.get(reverse("gallery:public_images")).content.decode()
    assert "shared.png" not in client.get(reverse("gallery:my_images")).content.decode()
    assert client.post(reverse("gallery:image_delete", args=[public_image.pk])).status_code == 404
    assert Image.objects.filter(pk=public_image.pk).exists()


def test_making_an_image_private_hides_it_again(client, owner, friend, public_image):
    client.force_login(owner)
    client.post(reverse("gallery:image_visibility", args=[public_image.pk]), {"is_public": "0"})
    client.force_login(friend)
    assert client.get(reverse("gallery:image_file", args=[public_image.pk])).status_code == 404


def test_the_api_hides_private_images_from_strangers(stranger, private_image):
    api = APIClient()
    api.force_authenticate(stranger)
    for url in api_urls(private_image):
        assert api.get(url).status_code == 404, url
    assert (
        api.patch(reverse("api:image", args=[private_image.pk]), {"is_public": True}, format="json").status_code == 404
    )
    assert api.delete(reverse("api:image", args=[private_image.pk])).status_code == 404
    assert api.post(reverse("api:image_retry", args=[private_image.pk])).status_code == 404
    assert api.get(reverse("api:images")).json()["results"] == []


def test_the_api_requires_authentication(db, private_image):
    api = APIClient()
    for url in api_urls(private_image) + [reverse("api:images")]:
        response = api.get(url)
        assert response.status_code in (401, 403), url
        assert "detail" in response.json()


def test_media_is_never_served_from_a_public_media_url(client, owner, private_image):
    client.force_login(owner)
    assert client.get("/media/" + private_image.file).status_code == 404


def test_sendfile_mode_hands_checked_requests_to_the_front_server(client, owner, private_image, settings):
    settings.MEDIA_SENDFILE = "x-accel-redirect"
    client.force_login(owner)
    response = client.get(reverse("gallery:image_file", args=[private_image.pk]))
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == "/protected-media/" + private_image.file
    assert response.content == b""
