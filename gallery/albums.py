"""Albums, share links and favourites: the services that change them (reads are in selectors).

An album holds photos its owner may see. It opens to the people it is shared with (read-only) and
to anyone with one of its active links; selectors.album_images is what they see, so a photo that
leaves the album, or someone else's photo that turns private, leaves every share at once.
"""

import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from gallery import selectors
from gallery.models import Album, AlbumItem, Favourite, ShareLink

# Choices a person gets for a link's life; None: until revoked.
LINK_LIFETIME_DAYS = (1, 7, 30, None)


class AlbumRefused(ValueError):
    """The change cannot be made; str(error) tells the person why."""


def album_create(*, owner, name: str) -> Album:
    return Album.objects.create(owner=owner, name=_album_name(name))


def album_rename(*, album: Album, name: str) -> Album:
    album.name = _album_name(name)
    album.save(update_fields=["name", "updated_at"])
    return album


def _album_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise AlbumRefused("Give the album a name.")
    if len(name) > 100:
        raise AlbumRefused("Keep the album's name under 100 characters.")
    return name


def album_delete(*, album: Album) -> None:
    """Delete the album, its shares and links; its photos stay in their owners' libraries."""
    album.delete()


def album_add_images(*, album: Album, image_ids: Iterable[int]) -> int:
    """Add the photos among `image_ids` that the album's owner may see; returns how many were new."""
    allowed = list(selectors.images_visible_to(album.owner).filter(pk__in=list(image_ids)).values_list("pk", flat=True))
    present = set(album.items.filter(image_id__in=allowed).values_list("image_id", flat=True))
    new = [AlbumItem(album=album, image_id=pk) for pk in allowed if pk not in present]
    with transaction.atomic():
        AlbumItem.objects.bulk_create(new, ignore_conflicts=True)
        album.save(update_fields=["updated_at"])
    return len(new)


def album_remove_images(*, album: Album, image_ids: Iterable[int]) -> int:
    removed, _ = album.items.filter(image_id__in=list(image_ids)).delete()
    if album.cover_id is not None and not album.items.filter(image_id=album.cover_id).exists():
        album.cover = None
    album.save(update_fields=["cover", "updated_at"])
    return removed


def album_set_cover(*, album: Album, image_id: int) -> Album:
    if not selectors.album_images(album).filter(pk=image_id).exists():
        raise AlbumRefused("Only a photo in the album can be its cover.")
    album.cover_id = image_id
    album.save(update_fields=["cover", "updated_at"])
    return album


def album_share_with(*, album: Album, username: str) -> None:
    """Share the album (read-only) with the person called `username`."""
    person = get_user_model().objects.filter(username__iexact=(username or "").strip(), is_active=True).first()
    if person is None:
        raise AlbumRefused(f"Nobody here is called “{username.strip()}”.")
    if person.pk == album.owner_id:
        raise AlbumRefused("The album is already yours.")
    album.shared_with.add(person)


def album_unshare(*, album: Album, user_id: int) -> None:
    album.shared_with.remove(user_id)


def share_link_create(*, album: Album, days: int | None) -> ShareLink:
    if days not in LINK_LIFETIME_DAYS:
        raise AlbumRefused("Choose how long the link works: 1, 7 or 30 days, or until you revoke it.")
    expires_at = timezone.now() + timedelta(days=days) if days else None
    return ShareLink.objects.create(album=album, token=secrets.token_urlsafe(32), expires_at=expires_at)


def share_link_revoke(*, link: ShareLink) -> None:
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])


def favourites_set(*, user, image_ids: Iterable[int], on: bool) -> int:
    """Heart (or un-heart) the photos among `image_ids` that `user` may see; returns how many changed."""
    visible = selectors.images_visible_to(user).filter(pk__in=list(image_ids))
    if not on:
        removed, _ = Favourite.objects.filter(user=user, image__in=visible).delete()
        return removed
    present = set(Favourite.objects.filter(user=user, image__in=visible).values_list("image_id", flat=True))
    new = [Favourite(user=user, image_id=pk) for pk in visible.values_list("pk", flat=True) if pk not in present]
    Favourite.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)
