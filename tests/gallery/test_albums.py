"""Albums, share links and favourites: what each person and each link opens, and nothing more.

Named people: owner (makes the album), friend (it is shared with them), stranger (it is not),
anonymous (a visitor with or without a link)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from gallery import albums
from gallery.models import Album, Image, ShareLink
from tests import images


@pytest.fixture
def trip(owner, stranger, upload):
    """An album of two of the owner's private photos; a third private photo stays out of it."""
    inside = [upload(owner, images.camera_jpeg(seed=seed), name=f"in-{seed}.jpg").image for seed in (1, 2)]
    outside = upload(owner, images.png(seed=3), name="outside.png").image
    album = albums.album_create(owner=owner, name="Trip")
    albums.album_add_images(album=album, image_ids=[image.pk for image in inside])
    return album, inside, outside


def album_urls(album, image) -> list[str]:
    return [
        reverse("gallery:album_detail", args=[album.pk]),
        reverse("gallery:album_photo", args=[album.pk, image.pk]),
        reverse("gallery:album_photo_file", args=[album.pk, image.pk]),
        reverse("gallery:album_photo_thumbnail", args=[album.pk, image.pk]),
    ]


def link_urls(token: str, image) -> list[str]:
    return [
        reverse("gallery:shared_album", args=[token]),
        reverse("gallery:shared_photo", args=[token, image.pk]),
        reverse("gallery:shared_photo_file", args=[token, image.pk]),
        reverse("gallery:shared_photo_thumbnail", args=[token, image.pk]),
    ]


def test_the_owner_and_the_people_it_is_shared_with_open_every_album_url(client, owner, friend, trip):
    album, inside, _ = trip
    albums.album_share_with(album=album, username=friend.username)
    for person in (owner, friend):
        client.force_login(person)
        assert [client.get(url).status_code for url in album_urls(album, inside[0])] == [200] * 4
    page = client.get(reverse("gallery:album_list")).content.decode()
    assert "Shared with you" in page and "Trip" in page


def test_a_stranger_and_anonymous_visitors_get_404_or_the_login_page(client, owner, stranger, trip):
    album, inside, _ = trip
    client.force_login(stranger)
    assert [client.get(url).status_code for url in album_urls(album, inside[0])] == [404] * 4
    assert "Trip" not in client.get(reverse("gallery:album_list")).content.decode()
    client.logout()
    assert all(client.get(url).status_code == 302 for url in album_urls(album, inside[0]))


def test_sharing_an_album_shows_its_photos_and_nothing_else_of_the_owners(client, owner, friend, trip):
    album, inside, outside = trip
    albums.album_share_with(album=album, username=friend.username)
    client.force_login(friend)
    # Not through the album: it is not in it.
    assert [client.get(url).status_code for url in album_urls(album, outside)[1:]] == [404] * 3
    # Not through the gallery's own URLs either: sharing an album does not make its photos public.
    for image in (*inside, outside):
        assert client.get(reverse("gallery:image_detail", args=[image.pk])).status_code == 404
        assert client.get(reverse("gallery:image_thumbnail", args=[image.pk])).status_code == 404
    assert "in-1.jpg" not in client.get(reverse("gallery:public_images")).content.decode()


def test_people_shared_with_cannot_change_the_album(client, owner, friend, trip):
    album, inside, _ = trip
    albums.album_share_with(album=album, username=friend.username)
    client.force_login(friend)
    changes = [
        ("album_rename", {"name": "Mine now"}),
        ("album_remove", {"image_ids": [inside[0].pk]}),
        ("album_share", {"username": "stranger"}),
        ("album_link_create", {"days": "7"}),
        ("album_cover", {"image_id": inside[0].pk}),
        ("album_delete", {}),
    ]
    for name, data in changes:
        assert client.post(reverse(f"gallery:{name}", args=[album.pk]), data).status_code == 404, name
    album.refresh_from_db()
    assert album.name == "Trip" and album.items.count() == 2 and not album.links.exists()
    assert "Make a link" not in client.get(reverse("gallery:album_detail", args=[album.pk])).content.decode()


def test_stopping_a_share_closes_the_album_to_them(client, owner, friend, trip):
    album, inside, _ = trip
    albums.album_share_with(album=album, username=friend.username)
    client.force_login(owner)
    client.post(reverse("gallery:album_unshare", args=[album.pk, friend.pk]))
    client.force_login(friend)
    assert [client.get(url).status_code for url in album_urls(album, inside[0])] == [404] * 4


def test_an_anonymous_visitor_with_a_link_sees_that_albums_photos_only(client, owner, trip):
    album, inside, outside = trip
    client.force_login(owner)
    client.post(reverse("gallery:album_link_create", args=[album.pk]), {"days": ""})
    link = ShareLink.objects.get(album=album)
    assert len(link.token) >= 40  # 32 random bytes
    client.logout()
    assert [client.get(url).status_code for url in link_urls(link.token, inside[0])] == [200] * 4
    page = client.get(reverse("gallery:shared_album", args=[link.token])).content.decode()
    assert "in-1.jpg" in page and "in-2.jpg" in page and "outside.png" not in page
    # The link opens nothing else: other photos, the owner's library, the album's member URLs.
    assert [client.get(url).status_code for url in link_urls(link.token, outside)[1:]] == [404] * 3
    assert client.get(reverse("gallery:image_thumbnail", args=[inside[0].pk])).status_code == 404
    assert client.get(reverse("gallery:album_detail", args=[album.pk])).status_code == 302
    assert client.get(reverse("gallery:my_images")).status_code == 302


def test_a_revoked_or_expired_link_opens_nothing(client, owner, trip):
    album, inside, _ = trip
    revoked, expiring = albums.share_link_create(album=album, days=None), albums.share_link_create(album=album, days=1)
    client.force_login(owner)
    client.post(reverse("gallery:album_link_revoke", args=[album.pk, revoked.pk]))
    ShareLink.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client.logout()
    for link in (revoked, expiring):
        assert [client.get(url).status_code for url in link_urls(link.token, inside[0])] == [404] * 4
    assert client.get(reverse("gallery:shared_album", args=["not-a-token"])).status_code == 404


def test_a_photo_that_leaves_the_album_or_turns_private_leaves_every_share(
    client, owner, friend, stranger, upload, trip
):
    album, inside, _ = trip
    theirs = upload(stranger, images.png(seed=7), name="theirs.png").image
    Image.objects.filter(pk=theirs.pk).update(is_public=True)
    albums.album_add_images(album=album, image_ids=[theirs.pk])  # someone else's public photo
    link = albums.share_link_create(album=album, days=7)
    client.logout()
    assert client.get(link_urls(link.token, theirs)[3]).status_code == 200
    Image.objects.filter(pk=theirs.pk).update(is_public=False)
    assert client.get(link_urls(link.token, theirs)[3]).status_code == 404
    albums.album_remove_images(album=album, image_ids=[inside[0].pk])
    assert client.get(link_urls(link.token, inside[0])[3]).status_code == 404


def test_only_photos_the_owner_may_see_can_be_added(client, owner, stranger, upload, trip):
    album, _, _ = trip
    secret = upload(stranger, images.png(seed=8), name="secret.png").image
    client.force_login(owner)
    client.post(reverse("gallery:images_add_to_album"), {"album": album.pk, "image_ids": [secret.pk]})
    assert not album.items.filter(image=secret).exists()
    # Nor into someone else's album.
    theirs = albums.album_create(owner=stranger, name="Theirs")
    mine = Image.objects.filter(owner=owner).first()
    assert (
        client.post(reverse("gallery:images_add_to_album"), {"album": theirs.pk, "image_ids": [mine.pk]}).status_code
        == 404
    )
    assert not theirs.items.exists()


def test_link_visitors_download_originals_without_gps(client, owner, trip):
    import io

    from PIL import Image as PILImage

    album, inside, _ = trip
    link = albums.share_link_create(album=album, days=None)
    served = b"".join(client.get(link_urls(link.token, inside[0])[2]).streaming_content)
    with PILImage.open(io.BytesIO(served)) as photo:
        assert 0x8825 not in photo.getexif() and photo.getexif()[0x0110] == "Canon EOS R5"


def test_adding_to_a_new_album_from_a_photo_creates_it(client, owner, upload):
    image = upload(owner, images.png(seed=1)).image
    client.force_login(owner)
    response = client.post(
        reverse("gallery:images_add_to_album"),
        {"new_album": "  Garden  ", "image_ids": [image.pk], "next": "https://evil.example/"},
    )
    album = Album.objects.get(owner=owner)
    assert album.name == "Garden" and list(album.images.all()) == [image]
    assert response["Location"] == reverse("gallery:album_detail", args=[album.pk])  # not to another site


def test_someone_without_albums_is_offered_a_new_album_not_an_empty_list(client, owner, upload):
    """The photo page and the selection bar showed an empty album select (issue 30, bug 13)."""
    image = upload(owner, images.png(seed=1)).image
    client.force_login(owner)
    for url in (reverse("gallery:image_detail", args=[image.pk]), reverse("gallery:my_images")):
        page = client.get(url).content.decode()
        assert '<select name="album"' not in page and 'placeholder="New album name"' in page
    response = client.post(
        reverse("gallery:images_bulk"),
        {"action": "add_to_album", "image_ids": [image.pk], "new_album": ""},
        follow=True,
    )
    assert response.status_code == 200 and "Name a new album to add the photos to." in response.content.decode()
    albums.album_create(owner=owner, name="Garden")
    for url in (reverse("gallery:image_detail", args=[image.pk]), reverse("gallery:my_images")):
        page = client.get(url).content.decode()
        assert '<select name="album"' in page and ">Garden</option>" in page


def test_album_names_and_link_lifetimes_are_checked(owner, trip):
    album, _, _ = trip
    with pytest.raises(albums.AlbumRefused, match="name"):
        albums.album_rename(album=album, name="   ")
    with pytest.raises(albums.AlbumRefused, match="1, 7 or 30 days"):
        albums.share_link_create(album=album, days=3)
    with pytest.raises(albums.AlbumRefused, match="Nobody here"):
        albums.album_share_with(album=album, username="nobody-at-all")


def test_the_viewer_steps_through_the_album_newest_taken_first(client, owner, trip):
    album, inside, _ = trip  # both taken at the same moment: newest id first
    first, second = sorted(inside, key=lambda image: -image.pk)
    client.force_login(owner)
    page = client.get(reverse("gallery:album_photo", args=[album.pk, first.pk])).content.decode()
    older = 'data-older rel="next" aria-keyshortcuts="ArrowRight"'
    newer = 'data-newer rel="prev" aria-keyshortcuts="ArrowLeft"'
    assert f'{older} href="{reverse("gallery:album_photo", args=[album.pk, second.pk])}"' in page
    assert f"{newer} hidden" in page  # the newest has nothing newer
    page = client.get(reverse("gallery:album_photo", args=[album.pk, second.pk])).content.decode()
    assert f'{newer} href="{reverse("gallery:album_photo", args=[album.pk, first.pk])}"' in page
    assert f"{older} hidden" in page


def test_favourites_are_per_person_and_only_of_photos_they_may_see(client, owner, friend, stranger, upload):
    mine = upload(owner, images.png(seed=1), name="mine.png").image
    public = upload(stranger, images.png(seed=2), name="public.png").image
    secret = upload(stranger, images.png(seed=3), name="secret.png").image
    Image.objects.filter(pk=public.pk).update(is_public=True)
    client.force_login(owner)
    client.post(reverse("gallery:images_favourite"), {"image_ids": [mine.pk, public.pk, secret.pk], "on": "1"})
    page = client.get(reverse("gallery:favourite_images")).content.decode()
    assert "mine.png" in page and "public.png" in page and "secret.png" not in page
    client.force_login(friend)
    assert "mine.png" not in client.get(reverse("gallery:favourite_images")).content.decode()
    client.force_login(owner)
    client.post(reverse("gallery:images_favourite"), {"image_ids": [mine.pk], "on": "0"})
    assert "mine.png" not in client.get(reverse("gallery:favourite_images")).content.decode()


def test_the_admin_lists_albums_and_shows_links_without_their_tokens(client, owner, trip):
    from django.contrib.auth import get_user_model

    album, _, _ = trip
    link = albums.share_link_create(album=album, days=7)
    client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-pass-123"))
    assert "Trip" in client.get(reverse("admin:gallery_album_changelist")).content.decode()
    page = client.get(reverse("admin:gallery_album_change", args=[album.pk])).content.decode()
    assert link.token[:6] in page and link.token not in page


def test_the_owner_picks_a_cover_and_removes_a_photo_from_the_viewer(client, owner, friend, trip):
    album, inside, _ = trip
    albums.album_share_with(album=album, username=friend.username)
    viewer = reverse("gallery:album_photo", args=[album.pk, inside[1].pk])
    client.force_login(owner)
    page = client.get(viewer).content.decode()
    assert "Use as the album's cover" in page and "Remove from the album" in page
    client.post(reverse("gallery:album_cover", args=[album.pk]), {"image_id": inside[1].pk, "next": viewer})
    album.refresh_from_db()
    assert album.cover_id == inside[1].pk
    listing = client.get(reverse("gallery:album_list")).content.decode()
    assert reverse("gallery:album_photo_thumbnail", args=[album.pk, inside[1].pk]) in listing
    client.post(reverse("gallery:album_remove", args=[album.pk]), {"image_ids": [inside[1].pk]})
    album.refresh_from_db()
    assert album.cover_id is None and list(album.images.all()) == [inside[0]]
    client.force_login(friend)  # the people it is shared with get the viewer without the controls
    assert (
        "Remove from the album"
        not in client.get(reverse("gallery:album_photo", args=[album.pk, inside[0].pk])).content.decode()
    )


def test_a_private_photo_page_says_which_shared_albums_still_show_it(client, owner, friend, upload, colour_proposer):
    from gallery.albums import album_add_images, album_create, album_share_with, share_link_create, share_link_revoke

    image = upload(owner).image
    client.force_login(owner)

    def page() -> str:
        return client.get(reverse("gallery:image_detail", args=[image.pk])).content.decode()

    album = album_create(owner=owner, name="Family")
    album_add_images(album=album, image_ids=[image.pk])
    assert "Private, but whoever opens" not in page()  # in an album nobody else opens
    album_share_with(album=album, username="friend")
    assert "Private, but whoever opens" in page() and "Family" in page()
    album.shared_with.clear()
    link = share_link_create(album=album, days=7)
    assert "Private, but whoever opens" in page()
    share_link_revoke(link=link)
    assert "Private, but whoever opens" not in page()
    client.force_login(friend)  # only its owner is told
    album_share_with(album=album, username="friend")
    assert (
        "Private, but whoever opens"
        not in client.get(reverse("gallery:album_photo", args=[album.pk, image.pk])).content.decode()
    )


def test_one_viewer_offers_the_search_tools_wherever_the_photo_is_the_viewers_to_search(
    client, owner, friend, upload, colour_proposer
):
    """Issue 30: the album viewer had no object boxes, "More like this" or "Draw a box"; the photo page
    had no info panel. Both are now the one viewer (templates/gallery/viewer.html). Through an album or
    a link alone (another's private photo, or no account) it offers no search from the photo: no boxes,
    no region ids."""
    from search.vision.registry import reset_models

    mine = upload(owner, images.png(seed=4), name="mine.png").image
    assert mine.regions.filter(kind="object").exists()
    album = albums.album_create(owner=owner, name="Both")
    albums.album_add_images(album=album, image_ids=[mine.pk])
    albums.album_share_with(album=album, username=friend.username)
    link = albums.share_link_create(album=album, days=7)
    reset_models()

    def tools(page: str, image) -> dict[str, bool]:
        region = image.regions.filter(kind="object").first()
        return {
            "boxes": f'data-region="{region.pk}"' in page and f"?region={region.pk}" in page,
            "more like this": f"?similar={image.pk}" in page,
            "draw a box": 'id="draw-box"' in page and "data-box-search" in page,
            "info panel": 'id="viewer-info"' in page,
        }

    everything = {"boxes": True, "more like this": True, "draw a box": True, "info panel": True}
    client.force_login(owner)
    photo_page = client.get(reverse("gallery:image_detail", args=[mine.pk])).content.decode()
    album_viewer = client.get(reverse("gallery:album_photo", args=[album.pk, mine.pk])).content.decode()
    assert tools(photo_page, mine) == tools(album_viewer, mine) == everything
    assert "Use as the album's cover" in album_viewer and "Make public" in album_viewer  # album and owner tools

    client.force_login(friend)  # the owner's private photo, seen only through the shared album
    nothing = {"boxes": False, "more like this": False, "draw a box": False, "info panel": True}
    assert tools(client.get(reverse("gallery:album_photo", args=[album.pk, mine.pk])).content.decode(), mine) == nothing
    client.logout()
    assert (
        tools(client.get(reverse("gallery:shared_photo", args=[link.token, mine.pk])).content.decode(), mine) == nothing
    )

    Image.objects.filter(pk=mine.pk).update(is_public=True)  # now anyone signed in may search from it
    client.force_login(friend)
    assert (
        tools(client.get(reverse("gallery:album_photo", args=[album.pk, mine.pk])).content.decode(), mine) == everything
    )
