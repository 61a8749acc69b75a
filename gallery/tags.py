"""Tags on photos: what a photo shows (the model's tags less those a person removed, plus those a
person added), the photos a tag names, and a person's corrections. Who may do what is the caller's
rule (views pass only images the person may see, or owns)."""

import re
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max, Q, QuerySet

from gallery.models import Image, Tag

MAX_LABEL = 64


class TagRejected(ValueError):
    """str(error) tells the person what to change."""


@dataclass(frozen=True)
class Chip:
    label: str
    score: float | None  # the model's best probability for it in this photo; None for a person's tag
    by_person: bool


def clean_label(text: str) -> str:
    label = " ".join(re.sub(r"[^\w\s'-]", " ", text or "").lower().split())
    if not label:
        raise TagRejected("Type a tag: letters, digits, spaces, hyphens.")
    if len(label) > MAX_LABEL:
        raise TagRejected(f"Keep a tag under {MAX_LABEL} characters.")
    return label


def _as_stored(text: str) -> str | None:
    """`text` as tags are written (clean_label), or None for text no tag can be."""
    try:
        return clean_label(text)
    except TagRejected:
        return None


def image_chips(image: Image) -> list[Chip]:
    """The photo's tags as shown: a person's first, then the model's, best first."""
    decisions = dict(image.tags.filter(source=Tag.Source.PERSON).values_list("label", "removed"))
    chips = [
        Chip(label=label, score=None, by_person=True) for label, removed in sorted(decisions.items()) if not removed
    ]
    model = (
        image.tags.filter(source=Tag.Source.MODEL)
        .exclude(label__in=list(decisions))
        .values("label")
        .annotate(best=Max("score"))
        .order_by("-best", "label")
    )
    return chips + [Chip(label=row["label"], score=row["best"], by_person=False) for row in model]


def images_tagged(images: QuerySet[Image], label: str) -> QuerySet[Image]:
    """Those of `images` that carry `label`: a person put it on, or the model did and no one took it off."""
    label = _as_stored(label)
    if label is None:
        return images.none()
    removed = Tag.objects.filter(source=Tag.Source.PERSON, removed=True, label=label).values("image_id")
    added = Tag.objects.filter(source=Tag.Source.PERSON, removed=False, label=label).values("image_id")
    by_model = Tag.objects.filter(source=Tag.Source.MODEL, label=label).exclude(image_id__in=removed).values("image_id")
    return images.filter(Q(pk__in=added) | Q(pk__in=by_model))


def images_tagged_by_person(images: QuerySet[Image], label: str) -> QuerySet[Image]:
    """Those of `images` whose owner put `label` on them."""
    label = _as_stored(label)
    if label is None:
        return images.none()
    return images.filter(
        pk__in=Tag.objects.filter(source=Tag.Source.PERSON, removed=False, label=label).values("image_id")
    )


def labels_in(images: QuerySet[Image], limit: int = 200) -> list[str]:
    """The labels on these photos (for a filter menu), most used first."""
    from django.db.models import Count

    rows = (
        Tag.objects.filter(image__in=images, removed=False)
        .values("label")
        .annotate(n=Count("image", distinct=True))
        .order_by("-n", "label")[:limit]
    )
    return [row["label"] for row in rows]


def tag_add(*, image: Image, label: str) -> str:
    """The owner says the photo shows `label` (undoing an earlier removal of it)."""
    label = clean_label(label)
    with transaction.atomic():
        Tag.objects.update_or_create(
            image=image,
            label=label,
            source=Tag.Source.PERSON,
            defaults={"removed": False, "region": None, "score": None},
        )
    return label


def tag_remove(*, image: Image, label: str) -> str:
    """The owner says the photo does not show `label`: the model's tags of it stay hidden, also after
    the photo is tagged again."""
    label = clean_label(label)
    with transaction.atomic():
        Tag.objects.update_or_create(
            image=image,
            label=label,
            source=Tag.Source.PERSON,
            defaults={"removed": True, "region": None, "score": None},
        )
    return label


@dataclass(frozen=True)
class LabelGroup:
    label: str
    count: int
    cover_id: int  # the newest photo carrying it


def label_groups(images: QuerySet[Image], limit: int = 12) -> list[LabelGroup]:
    """The labels most of these photos carry (as images_tagged reads them), each with its count and
    the newest photo carrying it: Explore's "Things in your photos"."""
    groups = []
    for label in labels_in(images, limit=limit):
        tagged = images_tagged(images, label)
        cover = tagged.order_by("-shot_local", "-pk").values_list("pk", flat=True).first()
        if cover is not None:
            groups.append(LabelGroup(label=label, count=tagged.count(), cover_id=cover))
    groups.sort(key=lambda group: (-group.count, group.label))
    return groups
