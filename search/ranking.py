"""Ranking: from FAISS hits to the best match per image, in order.

`rank` asks the index for the top FETCH_K regions among those the search may return (FETCH_GROWTH
times more while a page is short), checks every hit against the database, keeps each image's best
match (`best_per_image`: the whole image wins near-ties), lowers what a left-out term matches
(`penalised`) and drops what falls under the threshold. Some kinds of query then reorder the top:
photos a person tagged with a text query's words (`tagged_first`), photos taken at the place a text
query names (`placed_first`), and the photo an uploaded crop was cut from (`source_first`).
"""

from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings
from django.db.models import QuerySet
from PIL import Image as PILImage

from gallery import storage
from gallery.models import Image, Region
from gallery.places import images_at
from gallery.tags import images_tagged_by_person
from search.index import Generation
from search.vision.pixels import LOCATE_SIDE, hash_distances, locate

# Each round that leaves a page short fetches this many times more regions.
FETCH_GROWTH = 4
# At most this many photos a person tagged with the query's words (or taken at the place they name) go first.
MAX_TAGGED_FIRST = 200


@dataclass(frozen=True)
class Match:
    """The best region of one image for a query (a SearchResult before its image is read)."""

    image_id: int
    score: float
    kind: str  # "global", "object", "tag" (tagged_first), "place" (placed_first) or "source" (source_first)
    box: list[int]
    region_id: int


@dataclass(frozen=True)
class Negative:
    """A left-out term of a composed query."""

    vector: np.ndarray
    weight: float
    threshold: float  # matching it starts here: the exclude threshold of its kind of query


def rank(
    vector: np.ndarray,
    generation: Generation,
    masks: list[np.ndarray],
    regions: QuerySet[Region],
    *,
    threshold: float,
    wanted: int,
    handicap: float = 0.0,
    negatives: tuple[Negative, ...] = (),
    copy_hash: int | None = None,
) -> list[Match]:
    """Best match per image above the threshold, best first; at least `wanted` images when there are that many.
    `vector`: one query vector, or several as rows. `negatives` lower the images that match them.
    `copy_hash`: a picture's perceptual hash; the photos it is a copy of come first (best_per_image).

    `masks` restrict the FAISS scan (the index's mirror of who may see what); `regions` is the same
    rule in the database, applied again to every hit.
    """
    k = settings.FETCH_K
    while True:
        scores, ids, eligible = generation.search(vector, k, masks=masks)
        # Several query vectors ("more like this" by objects): a region scores its best match.
        hits: dict[int, float] = {}
        for row_ids, row_scores in zip(ids, scores, strict=True):
            for i, s in zip(row_ids, row_scores, strict=True):
                if i >= 0 and s > hits.get(int(i), -np.inf):
                    hits[int(i)] = float(s)
        results = best_per_image(
            hits, regions, -np.inf if negatives else threshold, handicap=handicap, copy_hash=copy_hash
        )
        settled = len(results)
        if negatives:
            results = penalised(results, generation, negatives, threshold)
            # An image not fetched yet scores at most the last hit; a lowered one under that may yet be passed.
            frontier = scores[:, -1].max(initial=-np.inf) if scores.size else -np.inf
            settled = sum(1 for match in results if match.score >= frontier)
        exhausted = k >= eligible
        # Asking for more cannot add a match above the threshold once every row's last hit is below it.
        below_threshold = bool(hits) and all(
            row[row_ids >= 0].min(initial=np.inf) < threshold for row, row_ids in zip(scores, ids, strict=True)
        )
        if settled >= wanted or exhausted or below_threshold:
            return results
        k *= FETCH_GROWTH


# Each phrase of a "+" query is looked for in at most this many photos, its best.
ALL_OF_IMAGES = 1000


def all_of(
    terms: list[tuple[np.ndarray, float]],
    generation: Generation,
    masks: list[np.ndarray],
    regions: QuerySet[Region],
    *,
    handicap: float = 0.0,
    negatives: tuple[Negative, ...] = (),
) -> list[Match]:
    """Images that match every (vector, threshold) term, each scored by its weaker term and shown
    with that term's match (its box), best first: "a red circle + a blue square" asks for photos
    holding both. Each term is ranked alone down to its threshold (at most its ALL_OF_IMAGES best
    images: a threshold turned off must not fetch the whole library), then the sets are intersected."""
    matched: list[dict[int, Match]] = []
    for vector, threshold in terms:
        found = rank(vector, generation, masks, regions, threshold=threshold, wanted=ALL_OF_IMAGES, handicap=handicap)
        matched.append({match.image_id: match for match in found})
    common = set.intersection(*(set(term) for term in matched)) if matched else set()
    results = [min((term[image_id] for term in matched), key=lambda m: m.score) for image_id in common]
    results.sort(key=lambda m: (-m.score, -m.image_id))
    if negatives:
        results = penalised(results, generation, negatives, min(threshold for _, threshold in terms))
    return results


def best_per_image(
    hits: dict[int, float],
    regions: QuerySet[Region],
    threshold: float,
    *,
    handicap: float = 0.0,
    copy_hash: int | None = None,
) -> list[Match]:
    """One match per image: its whole image, unless an object scores more than SCORE_TIE_EPS above
    it. A whole image's score is first lowered by `handicap` (WHOLE_IMAGE_HANDICAP): where a model
    scores a busy scene as high as the object a query names, the object should still win. A photo
    whose objects are not found yet (searchable first, refined later) has no object to win: its
    whole image keeps its score, or a handicap meant for ranking would hide it until SAM is through.

    With `copy_hash` (a picture searched by), a photo the picture is a copy of, by the near-duplicate
    rule (its whole image scores NEAR_DUPLICATE_SIMILARITY or more and its perceptual hash is within
    NEAR_DUPLICATE_HASH_BITS), is matched as a whole, not lowered, and comes first: a person who
    searches with their own photo is looking for it. (NEAR_DUPLICATE_SIMILARITY is above every
    profile's MIN_IMAGE_SIMILARITY, so a copy passes the default threshold; a stricter min_score
    asked for is kept.)"""
    # Visibility is checked again here: `regions` is built from images_searchable_by(user).
    rows = regions.filter(pk__in=list(hits)).values_list(
        "pk", "image_id", "image__objects_status", "image__perceptual_hash", "kind", "x1", "y1", "x2", "y2"
    )
    by_image: dict[int, dict[str, Match]] = {}
    copies: set[int] = set()
    for pk, image_id, objects_status, perceptual_hash, kind, *box in rows:
        whole = kind == Region.Kind.GLOBAL
        if whole and _a_copy(hits[pk], perceptual_hash, copy_hash):
            copies.add(image_id)
        refined = objects_status == Image.ObjectsStatus.FOUND
        score = hits[pk] - handicap if whole and refined and image_id not in copies else hits[pk]
        match = Match(image_id=image_id, score=score, kind=kind, box=box, region_id=pk)
        best = by_image.setdefault(image_id, {})
        if kind not in best or match.score > best[kind].score:
            best[kind] = match
    results = []
    for image_id, best in by_image.items():
        whole, obj = best.get("global"), best.get("object")
        if whole is not None and image_id in copies:
            if whole.score >= threshold:
                results.append(whole)
            continue
        better_object = obj is not None and (whole is None or obj.score > whole.score + settings.SCORE_TIE_EPS)
        chosen = obj if better_object else whole
        if chosen is not None and chosen.score >= threshold:
            results.append(chosen)
    results.sort(key=lambda m: (m.image_id not in copies, -m.score, -m.image_id))
    return results


def _a_copy(similarity: float, perceptual_hash: int | None, copy_hash: int | None) -> bool:
    """The near-duplicate rule (search.duplicates) between a picture searched by and a photo."""
    if copy_hash is None or perceptual_hash is None or similarity < settings.NEAR_DUPLICATE_SIMILARITY:
        return False
    bits = int(hash_distances(np.array([copy_hash]), np.array([perceptual_hash]))[0, 0])
    return bits <= settings.NEAR_DUPLICATE_HASH_BITS


def penalised(
    matches: list[Match], generation: Generation, negatives: tuple[Negative, ...], threshold: float
) -> list[Match]:
    """`matches` less, for each negative term an image matches (its best region over the term's threshold),
    the excess times the term's weight; those still at or above `threshold`, best first."""
    if not matches:
        return matches
    scores = generation.image_scores(np.stack([n.vector for n in negatives]), [m.image_id for m in matches])
    over = np.maximum(scores - np.array([n.threshold for n in negatives]), 0.0)
    penalty = over @ np.array([n.weight for n in negatives])
    lowered = [replace(match, score=match.score - float(p)) for match, p in zip(matches, penalty, strict=True)]
    kept = [match for match in lowered if match.score >= threshold]
    kept.sort(key=lambda m: (-m.score, -m.image_id))
    return kept


def tagged_first(
    ranked: list[Match], text: str, images: QuerySet[Image], generation: Generation, vector: np.ndarray
) -> list[Match]:
    """Photos whose owner tagged them with exactly the query's words come first (kind "tag"): a
    person's word that a photo shows "birthday" outranks any model's guess, and finds it even where
    CLIP cannot."""
    tagged = images_tagged_by_person(images, text).values_list("pk", flat=True)[:MAX_TAGGED_FIRST]
    return pinned_first(ranked, list(tagged), "tag", generation, vector)


def placed_first(
    ranked: list[Match], text: str, images: QuerySet[Image], viewer, generation: Generation, vector: np.ndarray
) -> list[Match]:
    """Photos taken at the place the query's words name ("Paris", "Paris, France") come first (kind
    "place"), as far as `viewer` may know where they were taken: CLIP cannot see a town."""
    placed = images_at(images, text, viewer).values_list("pk", flat=True)[:MAX_TAGGED_FIRST]
    return pinned_first(ranked, list(placed), "place", generation, vector)


def pinned_first(
    ranked: list[Match], pinned: list[int], kind: str, generation: Generation, vector: np.ndarray
) -> list[Match]:
    """The `pinned` photos first (as `kind`, the whole photo, their CLIP score for the query, best
    first), then the rest of `ranked` in its order."""
    if not pinned:
        return ranked
    wholes = {
        image_id: (pk, [0, 0, x2, y2])
        for image_id, pk, x2, y2 in Region.objects.filter(image_id__in=pinned, kind=Region.Kind.GLOBAL).values_list(
            "image_id", "pk", "x2", "y2"
        )
    }
    pinned = [image_id for image_id in pinned if image_id in wholes]  # processed: they have a whole-image region
    scores = generation.image_scores(np.atleast_2d(vector)[:1], pinned)[:, 0] if pinned else np.zeros(0)
    first = [
        Match(
            image_id=image_id,
            score=float(score) if np.isfinite(score) else 0.0,
            kind=kind,
            box=wholes[image_id][1],
            region_id=wholes[image_id][0],
        )
        for image_id, score in zip(pinned, scores, strict=True)
    ]
    first.sort(key=lambda m: (-m.score, -m.image_id))
    kept = set(pinned)
    return first + [match for match in ranked if match.image_id not in kept]


def source_first(ranked: list[Match], part: PILImage.Image) -> list[Match]:
    """An uploaded picture that is a piece of one of the best SOURCE_CHECKED results — cropped from it
    and saved as cut, perhaps re-encoded — finds that photo first (kind "source", boxed where the piece
    lies): CLIP ranks every photo of the same kind of thing alike; the pixels tell which one it came
    from (search.vision.pixels.locate). The rest keep their order."""
    checked = ranked[: settings.SOURCE_CHECKED]
    if not checked:
        return ranked
    stored = {
        pk: (name, (width, height))
        for pk, name, width, height in Image.objects.filter(pk__in=[m.image_id for m in checked]).values_list(
            "pk", "file", "width", "height"
        )
    }
    found = []
    for match in checked:
        try:
            name, size = stored[match.image_id]
            photo = storage.read_rgb(name, at_least=LOCATE_SIDE)
        except (KeyError, OSError, ValueError):  # gone since, or its file is: it simply is not checked
            continue
        box = locate(part, photo, size)
        if box is None:
            continue
        whole = (box[2] - box[0]) * (box[3] - box[1]) >= 0.9 * size[0] * size[1]
        found.append(match if whole else replace(match, kind="source", box=box))  # a copy of it all stays as matched
    pinned = {match.image_id for match in found}
    return found + [match for match in ranked if match.image_id not in pinned]
