"""Acting on photos selected in a grid: each action, who it applies to, and delete's confirmation."""

import pytest
from django.urls import reverse

from gallery.models import Album, Favourite, Image
from tests import images


@pytest.fixture
def library(owner, stranger, upload):
    mine = [upload(owner, images.png(seed=seed), name=f"mine-{seed}.png").image for seed in (1, 2, 3)]
    theirs = upload(stranger, images.png(seed=4), name="theirs.png").image
    Image.objects.filter(pk=theirs.pk).update(is_public=True)
    return mine, theirs


def bulk(client, action: str, ids, **extra):
    return client.post(reverse("gallery:images_bulk"), {"action": action, "image_ids": [i.pk for i in ids], **extra})


def test_the_grid_offers_a_checkbox_per_photo_and_the_owners_actions(client, owner, library):
    client.force_login(owner)
    page = client.get(reverse("gallery:my_images")).content.decode()
    assert page.count('form="bulk" data-pick') == 3 and 'value="delete"' in page
    public = client.get(reverse("gallery:public_images")).content.decode()
    assert 'value="favourite"' in public and 'value="delete"' not in public  # not theirs to delete


def test_make_public_and_private_change_only_your_own(client, owner, library):
    mine, theirs = library
    client.force_login(owner)
    bulk(client, "make_public", [*mine[:2], theirs])
    assert set(Image.objects.filter(is_public=True).values_list("pk", flat=True)) == {mine[0].pk, mine[1].pk, theirs.pk}
    response = bulk(client, "make_private", [mine[0], theirs], next=reverse("gallery:public_images"))
    assert response["Location"] == reverse("gallery:public_images")
    assert Image.objects.get(pk=theirs.pk).is_public and not Image.objects.get(pk=mine[0].pk).is_public


def test_delete_asks_first_and_deletes_only_your_own(client, owner, library, django_capture_on_commit_callbacks):
    mine, theirs = library
    client.force_login(owner)
    asked = bulk(client, "delete", [mine[0], mine[1], theirs])
    page = asked.content.decode()
    assert asked.status_code == 200 and "Delete 2 photos?" in page and "1 selected photo is not yours" in page
    assert Image.objects.count() == 4  # nothing gone before the answer
    with django_capture_on_commit_callbacks(execute=True):
        bulk(client, "delete", [mine[0], mine[1], theirs], confirm="yes")
    assert set(Image.objects.values_list("pk", flat=True)) == {mine[2].pk, theirs.pk}


def test_favourite_and_add_to_album_take_any_photo_you_may_see(client, owner, library):
    mine, theirs = library
    client.force_login(owner)
    bulk(client, "favourite", [mine[0], theirs])
    assert set(Favourite.objects.filter(user=owner).values_list("image_id", flat=True)) == {mine[0].pk, theirs.pk}
    bulk(client, "add_to_album", [mine[1], theirs], new_album="Best of")
    assert set(Album.objects.get(owner=owner, name="Best of").images.values_list("pk", flat=True)) == {
        mine[1].pk,
        theirs.pk,
    }
    bulk(client, "unfavourite", [theirs])
    assert list(Favourite.objects.filter(user=owner).values_list("image_id", flat=True)) == [mine[0].pk]


def test_reprocess_queues_your_finished_photos_again(client, owner, library, django_capture_on_commit_callbacks):
    mine, theirs = library
    before = {image.pk: Image.objects.get(pk=image.pk).processed_at for image in (*mine, theirs)}
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        bulk(client, "reprocess", [mine[0], theirs])
    assert Image.objects.get(pk=mine[0].pk).processed_at > before[mine[0].pk]
    assert Image.objects.get(pk=theirs.pk).processed_at == before[theirs.pk]


def test_an_empty_selection_or_unknown_action_says_what_to_do(client, owner, library):
    client.force_login(owner)
    follow = client.post(reverse("gallery:images_bulk"), {"action": "delete"}, follow=True).content.decode()
    assert "Select one or more photos first." in follow
    follow = client.post(
        reverse("gallery:images_bulk"), {"action": "explode", "image_ids": [library[0][0].pk]}, follow=True
    ).content.decode()
    assert "Choose what to do" in follow
