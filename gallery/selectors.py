"""Read-side queries. Every list of images a person can reach starts from one of these.

The visibility rule lives here alone, in two forms: querysets for the database, and
`searchable_image_mask` over arrays for the search index's mirror (tests check they agree).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby

import numpy as np
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncMonth

from gallery.models import Album, Image, ShareLink
from imgsearch.params import MAX_ID

User = AbstractBaseUser | AnonymousUser


def images_visible_to(user: User) -> QuerySet[Image]:
    """Images `user` may look at: their own and everyone's public ones. Anonymous: none."""
    if not user.is_authenticated:
        return Image.objects.none()
    return Image.objects.filter(Q(owner=user) | Q(is_public=True))


def images_searchable_by(user: User, scope: str = "all") -> QuerySet[Image]:
    """Ready images `user` may find by searching `scope` ("all" they may see, "mine", "public")."""
    images = images_visible_to(user).filter(status=Image.Status.READY)
    if scope == "mine":
        return images.filter(owner=user)
    if scope == "public":
        return images.filter(is_public=True)
    return images


def searchable_image_mask(
    *, owner: np.ndarray, public: np.ndarray, ready: np.ndarray, user_id: int | None, scope: str = "all"
) -> np.ndarray:
    """`images_searchable_by` over arrays indexed by image id: True where that user may find the image."""
    if user_id is None:
        return np.zeros(len(ready), dtype=bool)
    mine = owner == user_id
    if scope == "mine":
        allowed = mine
    elif scope == "public":
        allowed = public.copy()
    else:
        allowed = mine | public
    return allowed & ready


def images_owned_by(user: User) -> QuerySet[Image]:
    """Images `user` may change (visibility, delete, retry): only their own."""
    if not user.is_authenticated:
        return Image.objects.none()
    return Image.objects.filter(owner=user)


def images_with_region_counts(queryset: QuerySet[Image]) -> QuerySet[Image]:
    return queryset.annotate(region_count=Count("regions"))


# --- The timeline --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A place on a timeline: strictly older than (shot_local, id) (Image.shot_local: the camera's
    wall clock). Keyset pagination, so a page costs the same on the first screen and ten thousand
    photos down, and uploads meanwhile shift nothing."""

    shot_local: datetime
    image_id: int

    def __str__(self) -> str:
        micros = round(self.shot_local.timestamp() * 1_000_000)
        return f"{micros}-{self.image_id}"

    @classmethod
    def parse(cls, text: str | None) -> "Cursor | None":
        """The cursor `str()` made, or None for anything else (a hand-edited URL starts at the top)."""
        try:
            micros, image_id = (text or "").split("-")
            cursor = cls(datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC), int(image_id))
        except (ValueError, OverflowError, OSError):
            return None
        return cursor if 0 <= cursor.image_id <= MAX_ID else None


@dataclass(frozen=True)
class TimelinePage:
    images: list[Image]
    next: Cursor | None  # where the next (older) page starts; None at the end


def timeline_page(queryset: QuerySet[Image], *, before: Cursor | None, size: int) -> TimelinePage:
    """Up to `size` images of `queryset`, newest taken first (by the camera's clock), older than `before`."""
    ordered = queryset.order_by("-shot_local", "-id")
    if before is not None:
        ordered = ordered.filter(
            Q(shot_local__lt=before.shot_local) | Q(shot_local=before.shot_local, id__lt=before.image_id)
        )
    images = list(ordered[: size + 1])
    last = images[size - 1] if len(images) > size else None
    return TimelinePage(images=images[:size], next=Cursor(last.shot_local, last.pk) if last else None)


def timeline_months(queryset: QuerySet[Image]) -> list[tuple[datetime, int]]:
    """[(first day of a month, number of photos taken in it)], newest first: the timeline's date jump."""
    rows = (
        queryset.order_by()
        .annotate(month=TruncMonth("shot_local", tzinfo=UTC))  # a wall clock kept as UTC: no conversion
        .values("month")
        .annotate(n=Count("id"))
        .order_by("-month")
    )
    return [(row["month"], row["n"]) for row in rows]


def on_this_day(
    queryset: QuerySet[Image], today: date, *, months: list[tuple[datetime, int]], limit: int = 24
) -> list[tuple[int, list[Image]]]:
    """Photos taken on `today`'s day and month in earlier years (by the camera's clock), newest first,
    as [(years ago, photos)]: the timeline's "On this day". `months`: timeline_months(queryset), to
    know which years to look in (each a range on the timeline's index)."""
    days = Q()
    for year in sorted({month.year for month, _ in months if month.month == today.month and month.year < today.year}):
        try:
            start = datetime(year, today.month, today.day, tzinfo=UTC)  # a wall clock kept as UTC
        except ValueError:  # 29 February, in a year without one
            continue
        days |= Q(shot_local__gte=start, shot_local__lt=start + timedelta(days=1))
    if not days:
        return []
    images = queryset.filter(days).order_by("-shot_local", "-id")[:limit]
    return [(today.year - year, list(group)) for year, group in groupby(images, key=lambda i: i.shot_local.year)]


# --- Favourites and albums -----------------------------------------------------------------------


def images_favoured_by(user: User) -> QuerySet[Image]:
    """The photos `user` hearted that they may still see."""
    return images_visible_to(user).filter(favourites__user=user) if user.is_authenticated else Image.objects.none()


def is_favourite(user: User, image: Image) -> bool:
    return user.is_authenticated and image.favourites.filter(user=user).exists()


def albums_owned_by(user: User) -> QuerySet[Album]:
    return Album.objects.filter(owner=user) if user.is_authenticated else Album.objects.none()


def albums_visible_to(user: User) -> QuerySet[Album]:
    """Albums `user` owns or that were shared with them."""
    if not user.is_authenticated:
        return Album.objects.none()
    return Album.objects.filter(Q(owner=user) | Q(shared_with=user)).distinct()


def album_images(album: Album) -> QuerySet[Image]:
    """What the album shows to everyone it is open to: its photos that its owner may still see (their
    own, and others' while those stay public). Only these become visible through the album."""
    return images_visible_to(album.owner).filter(album_items__album=album)


def albums_showing_to_others(image: Image) -> QuerySet[Album]:
    """Its owner's albums that hold `image` and that other people open: shared with someone, or with a
    link that still works. A private photo is seen there all the same (its owner put it there)."""
    from django.utils import timezone

    working_links = ShareLink.objects.filter(album=OuterRef("pk"), revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )
    held = Album.objects.filter(owner_id=image.owner_id, items__image=image)
    return held.filter(Q(shared_with__isnull=False) | Exists(working_links)).distinct().order_by("name")


def album_of_link(token: str) -> Album | None:
    """The album a share link opens, or None when the link is unknown, revoked or expired."""
    from django.utils import timezone

    link = ShareLink.objects.filter(token=token).select_related("album__owner").first() if token else None
    if link is None or not link.is_active(timezone.now()):
        return None
    return link.album
