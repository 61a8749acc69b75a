"""The archive: photos their owner puts away leave the timelines (theirs and the public one) and stay
in search, albums and favourites; nobody archives another person's photo."""

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from gallery import albums
from gallery.models import Image
from tests import images


def names_in(page: str) -> list[str]:
    return re.findall(r'<span class="name">([^<]+)</span>', page)


@pytest.fixture
def photos(owner, upload, colour_proposer, settings):
    settings.MIN_SIMILARITY = settings.MIN_IMAGE_SIMILARITY = -1  # tiny random models: every photo matches
    made = [
        upload(owner, images.png(seed=seed), name=f"{name}.png").image
        for seed, name in ((31, "receipt"), (32, "beach"))
    ]
    Image.objects.filter(pk__in=[photo.pk for photo in made]).update(is_public=True)
    return made


def test_an_archived_photo_leaves_the_timelines_and_stays_in_search_and_albums(client, owner, friend, photos):
    receipt, beach = photos
    album = albums.album_create(owner=owner, name="Papers")
    albums.album_add_images(album=album, image_ids=[receipt.pk])
    client.force_login(owner)
    client.post(reverse("gallery:images_bulk"), {"action": "archive", "image_ids": [receipt.pk]})
    assert names_in(client.get(reverse("gallery:my_images")).content.decode()) == ["beach.png"]
    assert names_in(client.get(reverse("gallery:archived_images")).content.decode()) == ["receipt.png"]
    assert "receipt.png" in client.get(reverse("gallery:album_detail", args=[album.pk])).content.decode()
    api = APIClient()
    api.force_authenticate(owner)
    found = api.post(reverse("api:search"), {"text": "a photo"}, format="json").json()["results"]
    assert receipt.pk in [result["image_id"] for result in found]
    assert api.get(reverse("api:image", args=[receipt.pk])).json()["archived"] is True
    assert [item["id"] for item in api.get(reverse("api:images") + "?archived=true").json()["results"]] == [receipt.pk]
    client.force_login(friend)
    assert names_in(client.get(reverse("gallery:public_images")).content.decode()) == ["beach.png"]

    client.force_login(owner)
    client.post(reverse("gallery:images_bulk"), {"action": "unarchive", "image_ids": [receipt.pk]})
    assert set(names_in(client.get(reverse("gallery:my_images")).content.decode())) == {"receipt.png", "beach.png"}


def test_the_api_archives_and_nobody_archives_another_persons_photo(client, owner, stranger, photos):
    receipt, _ = photos
    api = APIClient()
    api.force_authenticate(owner)
    assert api.patch(reverse("api:image", args=[receipt.pk]), {"archived": True}, format="json").json()["archived"]
    assert (
        api.patch(reverse("api:image", args=[receipt.pk]), {"archived": False}, format="json").json()["archived"]
        is False
    )
    client.force_login(stranger)
    client.post(reverse("gallery:images_bulk"), {"action": "archive", "image_ids": [receipt.pk]})
    stranger_api = APIClient()
    stranger_api.force_authenticate(stranger)
    assert (
        stranger_api.patch(reverse("api:image", args=[receipt.pk]), {"archived": True}, format="json").status_code
        == 404
    )
    assert Image.objects.get(pk=receipt.pk).archived_at is None
