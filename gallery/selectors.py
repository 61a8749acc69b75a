"""Read-side queries. Every list of images a person can reach starts from one of these.

The visibility rule lives here alone, in two forms: querysets for the database, and
`searchable_image_mask` over arrays for the search index's mirror (tests check they agree).
"""
import numpy as np
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet

from gallery.models import Image

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


def searchable_image_mask(*, owner: np.ndarray, public: np.ndarray, ready: np.ndarray, user_id: int | None,
                          scope: str = "all") -> np.ndarray:
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


def image_status_counts(user: User) -> dict[str, int]:
    """{status: number of the user's images in it}, with every status present."""
    counts = dict.fromkeys(Image.Status.values, 0)
    for row in images_owned_by(user).values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts
