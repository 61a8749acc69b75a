"""Near-duplicates: the same photo saved again — re-encoded, rescaled, lightly cropped.

Two photos of one owner are near-duplicates when their whole-image CLIP vectors score at least
NEAR_DUPLICATE_SIMILARITY *and* their perceptual hashes (imagehash's pHash: the low frequencies of
a 32x32 grey copy, 64 bits) differ in at most NEAR_DUPLICATE_HASH_BITS bits. CLIP alone calls two
shots of one scene the same; the hash alone is fooled by a crop of a busy photo less than by a
similar scene, but cannot tell a burst apart from a re-encode reliably; together they separate
re-encodes from similar scenes (bench/near_duplicates.py measures both sides). Photos CLIP finds
similar whose hashes differ are "similar, not identical".

A crop moves the low frequencies the hash keeps, so the hash misses most crops. For those, a pixel
check (same_picture: register the two pictures, then compare them block by block; for pictures too
smooth to register, cut_from: find the smaller in the larger at its own size) runs in the
background (run_worker's sweep, pixel_checks_backfill) between each photo and its likely copies
among the owner's photos; its verdicts (search.models.PixelVerdict) win over the rule above both
ways: a crop it confirms is a near-duplicate, another shot it refuses is not.

Byte-identical uploads never get this far: the upload refuses them (gallery.services).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from gallery import storage
from gallery.models import Image, Region
from gallery.selectors import images_owned_by
from search.index import IndexUnavailable, Visibility, get_index
from search.models import PixelCheck, PixelVerdict
from search.vision.identity import current_model
from search.vision.pixels import (
    LOCATE_SIDE,
    REGISTRATION_SIDE,
    cut_from,
    hash_distances,
    hash_neighbours,
    keypoints,
    same_picture,
    signed_hash,
)

logger = logging.getLogger(__name__)


def is_near_duplicate(similarity: float | np.ndarray, bits: int | np.ndarray):
    """The rule, for one pair or arrays of pairs: CLIP agrees and so do the pixels."""
    return (similarity >= settings.NEAR_DUPLICATE_SIMILARITY) & (bits <= settings.NEAR_DUPLICATE_HASH_BITS)


@dataclass(frozen=True)
class Group:
    """Near-identical photos of one owner, the one to keep first (most pixels, then the largest
    file, then the earliest upload)."""

    images: list[Image]

    @property
    def keep(self) -> Image:
        return self.images[0]


def duplicate_groups(owner) -> list[Group]:
    """Every group of `owner`'s ready photos linked by near-duplicate pairs (a re-encode of a crop of
    a photo joins both), largest groups first. Only the owner's own photos are compared."""
    rows = list(
        images_owned_by(owner)
        .filter(status=Image.Status.READY, perceptual_hash__isnull=False)
        .values_list("pk", "perceptual_hash")
    )
    if len(rows) < 2:
        return []
    ids = np.array([pk for pk, _ in rows], dtype=np.int64)
    hashes = np.array([h for _, h in rows], dtype=np.int64)
    # The hash narrows n^2 pairs to a few; CLIP vectors are read only for those.
    first, second = hash_neighbours(hashes, settings.NEAR_DUPLICATE_HASH_BITS)
    vectors = _global_vectors(ids[np.union1d(first, second)]) if len(first) else {}
    linked = {
        (int(min(ids[a], ids[b])), int(max(ids[a], ids[b])))
        for a, b in zip(first, second, strict=True)
        if ids[a] in vectors
        and ids[b] in vectors
        and float(vectors[ids[a]] @ vectors[ids[b]]) >= settings.NEAR_DUPLICATE_SIMILARITY
    }
    # The pixel check's verdicts win: it finds the crops the hash misses, and refuses the other
    # shots of one place that hash and CLIP both take for copies.
    ready = set(ids.tolist())
    for pair, same in _verdicts(owner).items():
        if same and ready.issuperset(pair):
            linked.add(pair)
        elif not same:
            linked.discard(pair)
    if not linked:
        return []
    groups = _connected(sorted(linked))
    images = images_owned_by(owner).in_bulk([pk for group in groups for pk in group])
    made = [Group(images=sorted((images[pk] for pk in group if pk in images), key=_keep_first)) for group in groups]
    made = [group for group in made if len(group.images) > 1]
    made.sort(key=lambda group: (-len(group.images), -group.keep.pk))
    return made


def _verdicts(owner) -> dict[tuple[int, int], bool]:
    """The pixel check's verdicts on pairs of `owner`'s photos: (smaller id, larger id) -> same picture."""
    rows = PixelVerdict.objects.filter(first__owner=owner, second__owner=owner).values_list(
        "first_id", "second_id", "same"
    )
    return {(first, second): same for first, second, same in rows}


def _keep_first(image: Image):
    return (-image.width * image.height, -image.size_bytes, image.created_at, image.pk)


def _connected(pairs: list[tuple[int, int]]) -> list[list[int]]:
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for x in list(parent):
        groups.setdefault(root(x), []).append(x)
    return list(groups.values())


def _global_vectors(image_ids) -> dict[int, np.ndarray]:
    """The whole-image vectors of these images that the configured model made."""
    model, _ = current_model()
    regions = Region.objects.filter(
        image_id__in=[int(i) for i in image_ids], kind=Region.Kind.GLOBAL, embedding_model=model
    )
    return {region.image_id: region.vector for region in regions}


@dataclass(frozen=True)
class Neighbours:
    duplicates: list[tuple[Image, float]]  # near-identical: (photo, similarity)
    similar: list[tuple[Image, float]]  # CLIP-similar, but the pixels differ: another shot


def neighbours(image: Image, user, *, limit: int = 8) -> Neighbours:
    """For the owner of `image`: their other photos that are near-duplicates of it, and those CLIP
    finds as similar whose pixels differ. Nothing for anyone else, or while the index is away."""
    none = Neighbours(duplicates=[], similar=[])
    if not user.is_authenticated or image.owner_id != user.pk or image.perceptual_hash is None:
        return none
    vectors = _global_vectors([image.pk])
    if image.pk not in vectors:
        return none
    try:
        generation = get_index().current()
    except IndexUnavailable:
        return none
    scores, region_ids, _ = generation.search(
        vectors[image.pk],
        4 * limit,
        visibility=Visibility(user_id=user.pk, scope="mine", kind="global", exclude_image_id=image.pk),
    )
    found = {
        rid: float(s)
        for rid, s in zip(region_ids[0], scores[0], strict=True)
        if s >= settings.NEAR_DUPLICATE_SIMILARITY
    }
    by_region = dict(Region.objects.filter(pk__in=list(found), image__owner=user).values_list("pk", "image_id"))
    scored = {by_region[rid]: score for rid, score in found.items() if rid in by_region}
    verdicts = {(a if b == image.pk else b): same for (a, b), same in _verdicts_of(image).items()}
    # A crop the pixel check found may be far from this photo by CLIP: it is listed all the same.
    missing = [pk for pk, same in verdicts.items() if same and pk not in scored]
    scored.update({pk: float(vector @ vectors[image.pk]) for pk, vector in _global_vectors(missing).items()})
    others = (
        images_owned_by(user)
        .filter(pk__in=list(scored), status=Image.Status.READY, perceptual_hash__isnull=False)
        .in_bulk()
    )
    duplicates, similar = [], []
    for pk, score in sorted(scored.items(), key=lambda item: -item[1]):
        other = others.get(pk)
        if other is None:
            continue
        bits = int(hash_distances([image.perceptual_hash], [other.perceptual_hash])[0, 0])
        same = verdicts.get(pk, bool(is_near_duplicate(score, bits)))
        (duplicates if same else similar).append((other, score))
    return Neighbours(duplicates=duplicates[:limit], similar=similar[:limit])


def _verdicts_of(image: Image) -> dict[tuple[int, int], bool]:
    rows = (PixelVerdict.objects.filter(first=image) | PixelVerdict.objects.filter(second=image)).values_list(
        "first_id", "second_id", "same"
    )
    return {(first, second): same for first, second, same in rows}


def _likely_copies(image: Image, generation, owner_hashes: tuple[np.ndarray, np.ndarray]) -> list[int]:
    """The owner's photos worth the pixel check against `image`: its NEAR_DUPLICATE_CHECKED nearest by
    whole-image vector (at least NEAR_DUPLICATE_CHECK_SIMILARITY) and as many nearest by hash (within
    NEAR_DUPLICATE_CHECK_HASH_BITS), those already judged left out. Only the owner's own photos."""
    nearest = settings.NEAR_DUPLICATE_CHECKED
    candidates: set[int] = set()
    vector = _global_vectors([image.pk]).get(image.pk)
    if vector is not None and nearest:
        scores, region_ids, _ = generation.search(
            vector,
            nearest,
            visibility=Visibility(user_id=image.owner_id, scope="mine", kind="global", exclude_image_id=image.pk),
        )
        close = [
            int(rid)
            for rid, score in zip(region_ids[0], scores[0], strict=True)
            if score >= settings.NEAR_DUPLICATE_CHECK_SIMILARITY
        ]
        candidates.update(
            Region.objects.filter(pk__in=close, image__owner_id=image.owner_id).values_list("image_id", flat=True)
        )
    ids, hashes = owner_hashes
    if nearest and len(ids):
        bits = hash_distances([image.perceptual_hash], hashes)[0]
        bits[ids == image.pk] = 65
        order = np.argsort(bits, kind="stable")[:nearest]
        candidates.update(int(ids[i]) for i in order if bits[i] <= settings.NEAR_DUPLICATE_CHECK_HASH_BITS)
    judged = {a if b == image.pk else b for a, b in _verdicts_of(image)}
    return sorted(candidates - judged - {image.pk})


def compare_with_neighbours(image: Image, generation, owner_hashes: tuple[np.ndarray, np.ndarray] | None = None) -> int:
    """Run the pixel check between `image` and its likely copies (see _likely_copies), keep every
    verdict it gives, and mark the photo checked. Returns how many pairs it judged. `owner_hashes`
    (ids, hashes of the owner's ready photos) may be passed by a caller checking many of one owner's."""
    if owner_hashes is None:
        owner_hashes = _owner_hashes(image.owner_id)
    others = Image.objects.filter(
        pk__in=_likely_copies(image, generation, owner_hashes), owner_id=image.owner_id, status=Image.Status.READY
    )
    judged = 0
    try:
        mine = keypoints(storage.read_rgb(image.file, at_least=REGISTRATION_SIDE)) if others else None
    except (OSError, ValueError) as error:  # its own file is gone or unreadable: the image page says so
        logger.warning("No pixel check for image %s: %s", image.pk, error)
        others = []
    for other in others:
        try:
            verdict = same_picture(mine, keypoints(storage.read_rgb(other.file, at_least=REGISTRATION_SIDE)))
            if verdict is None:  # too smooth to register, perhaps: is one the other cut at its own size?
                verdict = _cut_from_either(image, other)
        except (OSError, ValueError) as error:  # its file is gone or unreadable: judge it another time
            logger.warning("Pixel check skipped image %s against %s: %s", image.pk, other.pk, error)
            continue
        if verdict is not None and _saved(
            PixelVerdict.objects.update_or_create,
            first_id=min(image.pk, other.pk),
            second_id=max(image.pk, other.pk),
            defaults={"same": verdict},
        ):
            judged += 1
    _saved(PixelCheck.objects.update_or_create, image=image)
    return judged


def _cut_from_either(image: Image, other: Image) -> bool | None:
    """The pixel check's second way, for pictures with too few corners to register (a smooth sky, a
    drawing, a generated scene): the smaller one found in the larger at its own size, pixel for
    pixel (pixels.cut_from). The larger is read shrunk, the smaller whole."""
    part, photo = sorted((image, other), key=lambda candidate: (candidate.width * candidate.height, candidate.pk))
    if part.width > photo.width or part.height > photo.height:
        return None
    return cut_from(
        storage.read_rgb(part.file), storage.read_rgb(photo.file, at_least=LOCATE_SIDE), (photo.width, photo.height)
    )


def _saved(write: Callable[..., object], **fields) -> bool:
    """`write(**fields)`, one write of the pixel check, in its own transaction; False when a photo it
    names was deleted while the check ran (the foreign key fails on commit): nothing left to record."""
    try:
        with transaction.atomic():
            write(**fields)
    except IntegrityError:
        return False
    return True


def _owner_hashes(owner_id: int) -> tuple[np.ndarray, np.ndarray]:
    rows = list(
        Image.objects.filter(owner_id=owner_id, status=Image.Status.READY, perceptual_hash__isnull=False).values_list(
            "pk", "perceptual_hash"
        )
    )
    return (np.array([pk for pk, _ in rows], dtype=np.int64), np.array([h for _, h in rows], dtype=np.int64))


def pixel_checks_waiting(owner) -> int:
    """How many of `owner`'s processed photos the pixel check has yet to compare (the review page says so)."""
    return images_owned_by(owner).filter(status=Image.Status.READY, pixel_check__isnull=True).count()


def pixel_checks_backfill(*, limit: int = 10, seconds: float | None = None) -> int:
    """Run the pixel check for up to `limit` photos that have not had it (run_worker's sweep, which
    also stops it after `seconds`: a 12-megapixel photo with 16 likely copies takes under a second).

    Only photos the published index already holds: two photos processed at the same moment are
    then judged by whichever of them the index took in last, which finds the other there.
    """
    try:
        generation = get_index().current()
    except IndexUnavailable:
        return 0
    waiting = Image.objects.filter(
        status=Image.Status.READY, perceptual_hash__isnull=False, pixel_check__isnull=True
    ).order_by("pk")[: 20 * limit]
    indexed = [
        image
        for image in waiting
        if image.pk < len(generation.ready)
        and generation.ready[image.pk]
        and generation.owner[image.pk] == image.owner_id
    ][:limit]
    hashes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    started, done = time.monotonic(), 0
    for image in indexed:
        if seconds is not None and time.monotonic() - started > seconds:
            break
        done += 1
        if image.owner_id not in hashes:
            hashes[image.owner_id] = _owner_hashes(image.owner_id)
        compare_with_neighbours(image, generation, hashes[image.owner_id])
    return done


def hashes_backfill(*, limit: int = 50) -> int:
    """Give up to `limit` ready photos processed before hashes existed their hash (run_worker's sweep)."""
    done = 0
    for image in Image.objects.filter(status=Image.Status.READY, perceptual_hash__isnull=True).order_by("pk")[:limit]:
        try:
            value = signed_hash(storage.read_rgb(image.file))
        except (OSError, ValueError) as error:  # a missing or unreadable file: the page says so elsewhere
            logger.warning("No perceptual hash for image %s: %s", image.pk, error)
            continue
        done += Image.objects.filter(pk=image.pk, perceptual_hash__isnull=True).update(perceptual_hash=value)
    return done
