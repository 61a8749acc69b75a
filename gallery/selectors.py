"""Read-side queries. Every list of images a person can reach starts from one of these."""
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet

from gallery.models import Image

User = AbstractBaseUser | AnonymousUser


def images_visible_to(user: User) -> QuerySet[Image]:
    """Images `user` may look at: their own and everyone's public ones. Anonymous: none."""
    if not user.is_authenticated:
        return Image.objects.none()
    return Image.objects.filter(Q(owner=user) | Q(is_public=True))


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
