"""The trash: deleting moves a photo there, out of every timeline, album, share link and search at
once, for nobody but its owner to restore; TRASH_DAYS later the worker deletes it for good. Before,
a delete (one photo, a selection, the copies the near-duplicates page ticks) was final."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from gallery import albums
from gallery.models import Image
from tests import images


@pytest.fixture
def shared(owner, friend, upload, colour_proposer, settings):
    """A public photo of the owner's, in an album shared with a friend and by a link."""
    settings.MIN_SIMILARITY = settings.MIN_IMAGE_SIMILARITY = -1  # tiny random models: every photo matches
    photo = upload(owner, images.png(seed=11), name="beach.png").image
    Image.objects.filter(pk=photo.pk).update(is_public=True)
    album = albums.album_create(owner=owner, name="Summer")
    albums.album_add_images(album=album, image_ids=[photo.pk])
    albums.album_share_with(album=album, username=friend.username)
    link = albums.share_link_create(album=album, days=None)
    return photo, album, link


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def found_by(user, photo) -> bool:
    results = api_for(user).post(reverse("api:search"), {"text": "a photo"}, format="json").json()["results"]
    return photo.pk in [result["image_id"] for result in results]


def reachable(client, user, photo, album, link) -> list[int]:
    """What `user` meets at each place the photo was: timeline, page, album, link, public timeline."""
    client.force_login(user)
    return [
        int("beach.png" in client.get(reverse("gallery:my_images")).content.decode()),
        client.get(reverse("gallery:image_detail", args=[photo.pk])).status_code,
        client.get(reverse("gallery:album_photo", args=[album.pk, photo.pk])).status_code,
        client.get(reverse("gallery:shared_photo_file", args=[link.token, photo.pk])).status_code,
        int("beach.png" in client.get(reverse("gallery:public_images")).content.decode()),
    ]


def test_a_deleted_photo_leaves_every_place_at_once_and_comes_back_whole_when_restored(client, owner, friend, shared):
    photo, album, link = shared
    assert reachable(client, owner, photo, album, link) == [1, 200, 200, 200, 1] and found_by(friend, photo)
    client.force_login(owner)
    answer = client.post(reverse("gallery:image_delete", args=[photo.pk]), follow=True).content.decode()
    assert "to the trash" in answer and Image.all_objects.get(pk=photo.pk).trashed_at is not None
    assert reachable(client, owner, photo, album, link) == [0, 404, 404, 404, 0]
    assert reachable(client, friend, photo, album, link)[1:] == [404, 404, 404, 0]
    assert not found_by(owner, photo) and not found_by(friend, photo)
    assert api_for(friend).get(reverse("api:image", args=[photo.pk])).status_code == 404
    assert (client.get(reverse("gallery:shared_album", args=[link.token])).content.decode()).count("beach.png") == 0

    client.force_login(owner)
    trash = client.get(reverse("gallery:trash")).content.decode()
    assert "beach.png" in trash and client.get(reverse("gallery:trash_thumbnail", args=[photo.pk])).status_code == 200
    client.post(reverse("gallery:trash"), {"action": "restore", "image_ids": [photo.pk]})
    assert reachable(client, owner, photo, album, link) == [1, 200, 200, 200, 1]
    assert found_by(friend, photo)  # its vectors were kept: searchable at once


def test_nobody_else_sees_restores_or_empties_a_persons_trash(client, owner, stranger, upload):
    photo = upload(owner, images.png(seed=12), name="mine.png").image
    api_for(owner).delete(reverse("api:image", args=[photo.pk]))
    client.force_login(stranger)
    assert "mine.png" not in client.get(reverse("gallery:trash")).content.decode()
    assert client.get(reverse("gallery:trash_thumbnail", args=[photo.pk])).status_code == 404
    client.post(reverse("gallery:trash"), {"action": "restore", "image_ids": [photo.pk]})
    client.post(reverse("gallery:trash"), {"action": "empty", "confirm": "yes"})
    stranger_api = api_for(stranger)
    assert stranger_api.post(reverse("api:trashed_image_restore", args=[photo.pk])).status_code == 404
    assert stranger_api.delete(reverse("api:trashed_image", args=[photo.pk])).status_code == 404
    assert stranger_api.get(reverse("api:trash")).json() == []
    assert Image.all_objects.get(pk=photo.pk).trashed_at is not None  # still in its owner's trash


def test_the_worker_deletes_for_good_what_waited_trash_days(
    owner, upload, settings, django_capture_on_commit_callbacks
):
    old, recent = (upload(owner, images.png(seed=seed), name=f"{seed}.png").image for seed in (13, 14))
    api = api_for(owner)
    for photo in (old, recent):
        assert api.delete(reverse("api:image", args=[photo.pk])).status_code == 204
    Image.all_objects.filter(pk=old.pk).update(trashed_at=timezone.now() - timedelta(days=settings.TRASH_DAYS, hours=1))
    original = settings.MEDIA_ROOT / old.file
    assert original.exists()
    with django_capture_on_commit_callbacks(execute=True):  # the files go once the deletion commits
        call_command("run_worker", "--recover-only")  # the sweep the worker runs every RECOVERY_SWEEP_SECONDS
    assert not Image.all_objects.filter(pk=old.pk).exists() and not original.exists()
    assert [item["id"] for item in api.get(reverse("api:trash")).json()] == [recent.pk]


def test_uploading_a_photo_in_the_trash_again_brings_it_back(owner, upload):
    photo = upload(owner, images.png(seed=15), name="again.png").image
    api_for(owner).delete(reverse("api:image", args=[photo.pk]))
    outcome = upload(owner, images.png(seed=15), name="again-copy.png")
    assert outcome.outcome == "duplicate" and "restored" in outcome.message
    assert Image.objects.get(pk=photo.pk).trashed_at is None


def test_the_api_lists_restores_and_deletes_for_good(owner, upload, settings, django_capture_on_commit_callbacks):
    api = api_for(owner)
    photos = [upload(owner, images.png(seed=seed), name=f"{seed}.png").image for seed in (16, 17, 18)]
    for photo in photos:
        api.delete(reverse("api:image", args=[photo.pk]))
    listed = api.get(reverse("api:trash")).json()
    assert {item["id"] for item in listed} == {photo.pk for photo in photos} and all(
        item["trashed_at"] for item in listed
    )
    restored = api.post(reverse("api:trashed_image_restore", args=[photos[0].pk]))
    assert restored.status_code == 200 and api.get(reverse("api:image", args=[photos[0].pk])).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(reverse("api:trashed_image", args=[photos[1].pk])).status_code == 204
    assert not (settings.MEDIA_ROOT / photos[1].file).exists()
    assert api.delete(reverse("api:trash")).status_code == 204
    assert api.get(reverse("api:trash")).json() == [] and list(Image.all_objects.values_list("pk", flat=True)) == [
        photos[0].pk
    ]


def test_deleting_a_selection_moves_it_to_the_trash_and_emptying_asks_first(client, owner, upload):
    photos = [upload(owner, images.png(seed=seed), name=f"{seed}.png").image for seed in (19, 20)]
    client.force_login(owner)
    ids = [photo.pk for photo in photos]
    client.post(reverse("gallery:images_bulk"), {"action": "delete", "image_ids": ids, "confirm": "yes"})
    assert Image.objects.count() == 0 and Image.all_objects.count() == 2
    asked = client.post(reverse("gallery:trash"), {"action": "empty"})
    assert "cannot be undone" in asked.content.decode() and Image.all_objects.count() == 2
    client.post(reverse("gallery:trash"), {"action": "empty", "confirm": "yes"})
    assert Image.all_objects.count() == 0


def test_a_photo_trashed_while_processed_is_processed_once_restored(
    owner, settings, django_capture_on_commit_callbacks
):
    from gallery.services import image_create, image_restore, image_trash
    from gallery.work_queue import image_claim, images_recover
    from search.ingest import images_process_claimed
    from tests.conftest import upload_file

    settings.PROCESSING_STALE_SECONDS = 0  # recovery takes back a claim at once
    with django_capture_on_commit_callbacks(execute=False):  # queued, not yet processed
        photo = image_create(owner=owner, upload=upload_file(images.png(seed=21), "busy.png")).image
    claim = image_claim(image_id=photo.pk)
    image_trash(image=photo)  # while a worker holds it
    assert images_process_claimed([claim]) == {photo.pk: "superseded"}  # before: marked failed
    image_restore(image=photo)
    with django_capture_on_commit_callbacks(execute=True):
        images_recover(starting=True)
    assert Image.objects.get(pk=photo.pk).status == "ready"
