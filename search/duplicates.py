"""Near-duplicates: the same photo saved again — re-encoded, rescaled, lightly cropped.

Two photos of one owner are near-duplicates when their whole-image CLIP vectors score at least
NEAR_DUPLICATE_SIMILARITY *and* their perceptual hashes (imagehash's pHash: the low frequencies of
a 32x32 grey copy, 64 bits) differ in at most NEAR_DUPLICATE_HASH_BITS bits. CLIP alone calls two
shots of one scene the same; the hash alone is fooled by a crop of a busy photo less than by a
similar scene, but cannot tell a burst apart from a re-encode reliably; together they separate
re-encodes from similar scenes (bench/near_duplicates.py measures both sides). Photos CLIP finds
similar whose hashes differ are "similar, not identical".

Byte-identical uploads never get this far: the upload refuses them (gallery.services).
"""
import logging
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from gallery import storage
from gallery.models import Image, Region
from gallery.selectors import images_owned_by

logger = logging.getLogger(__name__)


def perceptual_hash(picture: PILImage.Image) -> int:
    """The picture's 64-bit pHash as an unsigned int."""
    import imagehash

    bits = imagehash.phash(picture).hash.flatten()
    return int(np.packbits(bits).view(">u8")[0])


def signed_hash(picture: PILImage.Image) -> int:
    """perceptual_hash as the signed 64-bit int the database stores (Image.perceptual_hash)."""
    return int(np.array(perceptual_hash(picture), dtype=np.uint64).view(np.int64))


def hash_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Hamming distances between two arrays of 64-bit hashes."""
    a = np.asarray(a).astype(np.int64).view(np.uint64)  # stored signed; the bits are what count
    b = np.asarray(b).astype(np.int64).view(np.uint64)
    return np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int64)


def hash_neighbours(hashes: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of `hashes` at most `bits` apart, as two index arrays: FAISS's exhaustive
    binary range search (every pair is compared; 50,000 photos in about a second on 2 cores)."""
    import faiss

    codes = np.ascontiguousarray(np.asarray(hashes, dtype=np.int64)).view(np.uint8).reshape(-1, 8)
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    limits, _, found = index.range_search(codes, bits + 1)  # distances strictly under the radius
    rows = np.repeat(np.arange(len(codes)), np.diff(limits.astype(np.int64)))
    keep = found > rows
    return rows[keep], found[keep].astype(np.int64)


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
    rows = list(images_owned_by(owner).filter(status=Image.Status.READY, perceptual_hash__isnull=False)
                .values_list("pk", "perceptual_hash"))
    if len(rows) < 2:
        return []
    ids = np.array([pk for pk, _ in rows], dtype=np.int64)
    hashes = np.array([h for _, h in rows], dtype=np.int64)
    # The hash narrows n^2 pairs to a few; CLIP vectors are read only for those.
    first, second = hash_neighbours(hashes, settings.NEAR_DUPLICATE_HASH_BITS)
    if len(first) == 0:
        return []
    vectors = _global_vectors(ids[np.union1d(first, second)])
    linked = [(int(ids[a]), int(ids[b])) for a, b in zip(first, second)
              if ids[a] in vectors and ids[b] in vectors
              and float(vectors[ids[a]] @ vectors[ids[b]]) >= settings.NEAR_DUPLICATE_SIMILARITY]
    groups = _connected(linked)
    images = images_owned_by(owner).in_bulk([pk for group in groups for pk in group])
    made = [Group(images=sorted((images[pk] for pk in group if pk in images), key=_keep_first)) for group in groups]
    made = [group for group in made if len(group.images) > 1]
    made.sort(key=lambda group: (-len(group.images), -group.keep.pk))
    return made


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
    from search.index import current_model

    model, _ = current_model()
    regions = Region.objects.filter(image_id__in=[int(i) for i in image_ids], kind=Region.Kind.GLOBAL,
                                    embedding_model=model)
    return {region.image_id: region.vector for region in regions}


@dataclass(frozen=True)
class Neighbours:
    duplicates: list[tuple[Image, float]]  # near-identical: (photo, similarity)
    similar: list[tuple[Image, float]]  # CLIP-similar, but the pixels differ: another shot


def neighbours(image: Image, user, *, limit: int = 8) -> Neighbours:
    """For the owner of `image`: their other photos that are near-duplicates of it, and those CLIP
    finds as similar whose pixels differ. Nothing for anyone else, or while the index is away."""
    from search.index import IndexUnavailable, Visibility, get_index

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
        vectors[image.pk], 4 * limit,
        visibility=Visibility(user_id=user.pk, scope="mine", kind="global", exclude_image_id=image.pk))
    found = {rid: float(s) for rid, s in zip(region_ids[0], scores[0]) if s >= settings.NEAR_DUPLICATE_SIMILARITY}
    by_region = dict(Region.objects.filter(pk__in=list(found), image__owner=user).values_list("pk", "image_id"))
    others = images_owned_by(user).filter(pk__in=by_region.values(), perceptual_hash__isnull=False).in_bulk()
    duplicates, similar = [], []
    for region_id, score in sorted(found.items(), key=lambda item: -item[1]):
        other = others.get(by_region.get(region_id))
        if other is None:
            continue
        bits = int(hash_distances([image.perceptual_hash], [other.perceptual_hash])[0, 0])
        (duplicates if is_near_duplicate(score, bits) else similar).append((other, score))
    return Neighbours(duplicates=duplicates[:limit], similar=similar[:limit])


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
