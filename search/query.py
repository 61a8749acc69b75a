"""The search service: one query in, a page of images the user may see out.

query -> CLIP vector (text tower, an uploaded image, or a stored vector) -> FAISS top-k restricted
to the regions this user may see -> rows from the database, visibility checked again -> best match
per image (the whole image wins near-ties) -> MIN_SIMILARITY -> sorted page of results.

A composed query (words and a photo together, several terms, terms to leave out) searches with the
weighted mean of its positive terms' vectors, so a score is the weighted mean of the terms' cosine
similarities and the threshold the same mean of theirs; an image that matches a negative term (any of
its regions above that term's threshold) loses the excess, times the term's weight.
"""
import io
import logging
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal, Union

import numpy as np
from django.conf import settings
from django.db.models import QuerySet

from gallery import storage
from gallery.imaging import to_rgb
from gallery.models import Image, Region
from gallery.selectors import album_images, albums_visible_to, images_searchable_by, images_visible_to
from gallery.tags import images_tagged, images_tagged_by_person
from gallery.validation import UploadRejected, validate_image_bytes
from search.index import Generation, get_index, IndexUnavailable, scan_pool, Visibility

logger = logging.getLogger(__name__)

Scope = Literal["all", "mine", "public"]
MatchKind = Literal["both", "global", "object"]
SCOPES = ("all", "mine", "public")
MATCH_KINDS = ("both", "global", "object")
# Each round that leaves a page short fetches this many times more regions.
FETCH_GROWTH = 4


class SearchError(ValueError):
    """The query cannot be run; str(error) tells the person what to change."""


class SearchUnavailable(SearchError):
    """The server cannot run this kind of query now. str(error) is for everyone; `fix` (server paths,
    commands) is for staff only."""

    def __init__(self, message: str, *, fix: str = ""):
        super().__init__(message)
        self.fix = fix


@dataclass(frozen=True)
class TextQuery:
    text: str


@dataclass(frozen=True)
class ImageQuery:
    data: bytes  # an uploaded query image: validated like uploads, never stored


@dataclass(frozen=True)
class SimilarQuery:
    image_id: int  # "more like this": that image's whole-image vector


@dataclass(frozen=True)
class RegionQuery:
    region_id: int


@dataclass(frozen=True)
class BoxQuery:
    image_id: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in the image's upright pixels


@dataclass(frozen=True)
class VectorQuery:
    """A search by an uploaded photo, run again from its saved vector (search.models.SearchRecord)."""

    vector: bytes  # float32
    model: str  # the model that made it


Query = Union[TextQuery, ImageQuery, SimilarQuery, RegionQuery, BoxQuery, VectorQuery]
# Weights a person may give a term of a composed query.
MAX_WEIGHT = 10.0


@dataclass(frozen=True)
class Term:
    query: Query
    weight: float = 1.0


@dataclass(frozen=True)
class ComposedQuery:
    """Results match the positive terms together (the weighted mean of their scores) and are pushed
    down where they match a negative term: "this photo, but at night", "beach -people"."""

    positive: tuple[Term, ...]
    negative: tuple[Term, ...] = ()


@dataclass(frozen=True)
class Filters:
    """Narrow a search to some photos. Applied inside the vector scan (the bitmap FAISS skips by), so a
    filter that leaves few photos still fills a page with the best of those few."""

    taken_from: date | None = None  # on or after this day (the site's time zone)
    taken_to: date | None = None  # on or before this day
    album_id: int | None = None  # an album the person may open; its photos they may search
    camera: str = ""
    favourites: bool = False
    tag: str = ""  # photos carrying this tag (gallery/tags.py: the model's, unless removed, or a person's)

    def __bool__(self) -> bool:
        return any((self.taken_from, self.taken_to, self.album_id is not None, self.camera, self.favourites, self.tag))

    def apply(self, images: QuerySet[Image], user) -> QuerySet[Image]:
        if self.taken_from and self.taken_to and self.taken_from > self.taken_to:
            raise SearchError("The “from” date is after the “to” date; swap them.")
        if self.taken_from:
            images = images.filter(shot_at__date__gte=self.taken_from)
        if self.taken_to:
            images = images.filter(shot_at__date__lte=self.taken_to)
        if self.album_id is not None:
            album = albums_visible_to(user).filter(pk=self.album_id).first()
            if album is None:
                raise SearchError("No such album.")
            images = images.filter(pk__in=album_images(album).values("pk"))
        if self.camera:
            images = images.filter(camera=self.camera)
        if self.favourites:
            images = images.filter(favourites__user=user)
        if self.tag:
            images = images_tagged(images, self.tag)
        return images


@dataclass(frozen=True)
class SearchResult:
    image: Image
    score: float
    kind: str  # "global" or "object"
    box: list[int]
    region_id: int


@dataclass(frozen=True)
class SearchPage:
    results: list[SearchResult]
    page: int
    page_size: int
    has_next: bool
    photo_vector: np.ndarray | None = None  # an uploaded photo's vector: what a saved search of it keeps


def search(
    *,
    user,
    query: Query,
    scope: Scope = "all",
    kind: MatchKind = "both",
    min_score: float | None = None,
    page: int = 1,
    page_size: int | None = None,
    filters: Filters | None = None,
) -> SearchPage:
    """Run `query` for `user` among the photos `filters` leave. Raises SearchError for anything the
    person must fix."""
    if scope not in SCOPES:
        raise SearchError(f"Unknown scope {scope!r}; use one of {', '.join(SCOPES)}.")
    if kind not in MATCH_KINDS:
        raise SearchError(f"Unknown match kind {kind!r}; use one of {', '.join(MATCH_KINDS)}.")
    page_size = page_size or settings.SEARCH_PAGE_SIZE
    if not 1 <= page_size <= settings.SEARCH_MAX_PAGE_SIZE:
        raise SearchError(f"page_size must be between 1 and {settings.SEARCH_MAX_PAGE_SIZE}.")
    if page < 1:
        raise SearchError("page must be 1 or more.")

    generation = _current_generation()  # one generation for every round of this query
    user_id = user.pk if user.is_authenticated else None
    images = images_searchable_by(user, scope)
    only_image_ids = None
    if filters:
        images = filters.apply(images, user)
        only_image_ids = np.fromiter(images.values_list("pk", flat=True), dtype=np.int64)
    early_masks = None
    if not any(isinstance(term.query, (SimilarQuery, RegionQuery, BoxQuery)) for term in _terms(query)):
        # No source image to leave out, so the bitmap of what this user may see is built while the
        # query is being embedded.
        early_masks = scan_pool().submit(generation.allowed, Visibility(user_id=user_id, scope=scope, kind=kind,
                                                                        only_image_ids=only_image_ids))
    plan = _plan(user, query)
    vector, source_image_id = plan.vector, plan.source_image_id
    threshold = float(min_score) if min_score is not None else plan.threshold
    if source_image_id is not None:
        images = images.exclude(pk=source_image_id)  # "more like this" should not answer with itself
    regions = Region.objects.filter(image__in=images)
    if kind != "both":
        regions = regions.filter(kind=kind)
    if early_masks is not None:
        masks = early_masks.result()
    else:
        masks = generation.allowed(Visibility(user_id=user_id, scope=scope, kind=kind, exclude_image_id=source_image_id,
                                              only_image_ids=only_image_ids))
    ranked = _rank(vector, generation, masks, regions, threshold=threshold, handicap=plan.handicap,
                   wanted=max(page * page_size + 1, settings.SOURCE_CHECKED), negatives=plan.negatives)
    if isinstance(query, TextQuery) and kind != "object":
        ranked = _tagged_first(ranked, query.text, images, generation, vector)
    if isinstance(query, ImageQuery) and kind != "global":
        ranked = _source_first(ranked, query.data)
    start = (page - 1) * page_size
    shown = ranked[start : start + page_size]
    # Model objects only for the page shown, read through the visibility rule once more.
    by_id = images.select_related("owner").in_bulk([match.image_id for match in shown])
    results = [SearchResult(image=by_id[m.image_id], score=m.score, kind=m.kind, box=m.box, region_id=m.region_id)
               for m in shown if m.image_id in by_id]
    return SearchPage(results=results, page=page, page_size=page_size, has_next=len(ranked) > start + page_size,
                      photo_vector=plan.vector if isinstance(query, ImageQuery) else None)


@dataclass(frozen=True)
class Match:
    """The best region of one image for a query (a SearchResult before its image is read)."""

    image_id: int
    score: float
    kind: str
    box: list[int]
    region_id: int


@dataclass(frozen=True)
class Negative:
    vector: np.ndarray
    weight: float
    threshold: float  # matching it starts here: the default threshold of its kind of query


@dataclass(frozen=True)
class Plan:
    """How to run a query: what to search with and what counts as a match."""

    vector: np.ndarray  # one row, or several (a region scores its best row)
    source_image_id: int | None  # the photo a query came from, left out of its results
    threshold: float
    handicap: float  # WHOLE_IMAGE_HANDICAP, or 0 where the query is about a whole photo
    negatives: tuple[Negative, ...] = ()


def _terms(query) -> tuple[Term, ...]:
    if isinstance(query, ComposedQuery):
        return query.positive + query.negative
    return (Term(query),)


def _threshold(query: Query) -> float:
    if isinstance(query, TextQuery):
        return settings.MIN_SIMILARITY
    if isinstance(query, SimilarQuery) and settings.MIN_SIMILAR_SIMILARITY is not None:
        return settings.MIN_SIMILAR_SIMILARITY
    return settings.MIN_IMAGE_SIMILARITY


def _exclude_threshold(query: Query) -> float:
    """Over what a left-out term lowers an image: a phrase may have its own floor, lower than the one
    that shows results (MIN_EXCLUDE_SIMILARITY), so that a strict show floor still leaves out what
    the phrase names."""
    if isinstance(query, TextQuery) and settings.MIN_EXCLUDE_SIMILARITY is not None:
        return settings.MIN_EXCLUDE_SIMILARITY
    return _threshold(query)


def _handicap(queries) -> float:
    # "More like this" asks about a whole photo; every other kind of query about what is in one.
    return 0.0 if any(isinstance(q, SimilarQuery) for q in queries) else settings.WHOLE_IMAGE_HANDICAP


def _plan(user, query) -> Plan:
    if not isinstance(query, ComposedQuery):
        vector, source = query_vector(user=user, query=query)
        return Plan(vector=vector, source_image_id=source, threshold=_threshold(query), handicap=_handicap([query]))
    if not query.positive:
        raise SearchError("Say what to search for, not only what to leave out (“beach -people”).")
    for term in query.positive + query.negative:
        if not 0 < term.weight <= MAX_WEIGHT:
            raise SearchError(f"A weight must be above 0 and at most {MAX_WEIGHT:g}.")
    sources = []
    terms = []
    for term in query.positive:
        vector, source = query_vector(user=user, query=term.query)
        terms.append(np.atleast_2d(vector))
        if source is not None:
            sources.append(source)
    if len(set(sources)) > 1:
        raise SearchError("Combine words with at most one photo.")
    weights = np.array([term.weight for term in query.positive], dtype=np.float32)
    # Unnormalised on purpose: the inner product with it is the weighted mean of the terms' cosines.
    # A term with several rows ("more like this" by objects: the photo, then each object) gives as
    # many rows, each mixed with the other terms; a region scores its best.
    vector = sum(weight * rows for weight, rows in zip(weights, terms)) / weights.sum()
    threshold = float(np.dot(weights, [_threshold(term.query) for term in query.positive]) / weights.sum())
    negatives = tuple(Negative(vector=np.atleast_2d(query_vector(user=user, query=term.query)[0])[0],
                               weight=term.weight, threshold=_exclude_threshold(term.query)) for term in query.negative)
    return Plan(vector=vector.astype(np.float32), source_image_id=sources[0] if sources else None,
                threshold=threshold, handicap=_handicap([term.query for term in query.positive]),
                negatives=negatives)


def _current_generation() -> Generation:
    try:
        return get_index().current()
    except IndexUnavailable:
        logger.warning("No search index has been published yet; is `manage.py run_indexer` running?")
        raise SearchUnavailable("The search index is still being built; try again in a minute.") from None


def _rank(vector: np.ndarray, generation: Generation, masks: list[np.ndarray], regions: QuerySet[Region], *,
          threshold: float, wanted: int, handicap: float = 0.0, negatives: tuple[Negative, ...] = ()) -> list[Match]:
    """Best match per image above the threshold, best first; at least `wanted` images when there are that many.
    `vector`: one query vector, or several as rows. `negatives` lower the images that match them.

    `masks` restrict the FAISS scan (the index's mirror of who may see what); `regions` is the same
    rule in the database, applied again to every hit.
    """
    k = settings.FETCH_K
    while True:
        scores, ids, eligible = generation.search(vector, k, masks=masks)
        # Several query vectors ("more like this" by objects): a region scores its best match.
        hits: dict[int, float] = {}
        for row_ids, row_scores in zip(ids, scores):
            for i, s in zip(row_ids, row_scores):
                if i >= 0 and s > hits.get(int(i), -np.inf):
                    hits[int(i)] = float(s)
        results = _best_per_image(hits, regions, -np.inf if negatives else threshold, handicap=handicap)
        settled = len(results)
        if negatives:
            results = _penalised(results, generation, negatives, threshold)
            # An image not fetched yet scores at most the last hit; a lowered one under that may yet be passed.
            frontier = scores[:, -1].max(initial=-np.inf) if scores.size else -np.inf
            settled = sum(1 for match in results if match.score >= frontier)
        exhausted = k >= eligible
        # Asking for more cannot add a match above the threshold once every row's last hit is below it.
        below_threshold = bool(hits) and all(row[row_ids >= 0].min(initial=np.inf) < threshold
                                             for row, row_ids in zip(scores, ids))
        if settled >= wanted or exhausted or below_threshold:
            return results
        k *= FETCH_GROWTH


def _best_per_image(hits: dict[int, float], regions: QuerySet[Region], threshold: float, *,
                    handicap: float = 0.0) -> list[Match]:
    """One match per image: its whole image, unless an object scores more than SCORE_TIE_EPS above
    it. A whole image's score is first lowered by `handicap` (WHOLE_IMAGE_HANDICAP): where a model
    scores a busy scene as high as the object a query names, the object should still win."""
    # Visibility is checked again here: `regions` is built from images_searchable_by(user).
    rows = regions.filter(pk__in=list(hits)).values_list("pk", "image_id", "kind", "x1", "y1", "x2", "y2")
    by_image: dict[int, dict[str, Match]] = {}
    for pk, image_id, kind, *box in rows:
        score = hits[pk] - handicap if kind == Region.Kind.GLOBAL else hits[pk]
        match = Match(image_id=image_id, score=score, kind=kind, box=box, region_id=pk)
        best = by_image.setdefault(image_id, {})
        if kind not in best or match.score > best[kind].score:
            best[kind] = match
    results = []
    for best in by_image.values():
        chosen = best.get(Region.Kind.GLOBAL)
        obj = best.get(Region.Kind.OBJECT)
        if chosen is None or (obj is not None and obj.score > chosen.score + settings.SCORE_TIE_EPS):
            chosen = obj
        if chosen.score >= threshold:
            results.append(chosen)
    results.sort(key=lambda m: (-m.score, -m.image_id))
    return results


# At most this many photos a person tagged with the query's words go first.
MAX_TAGGED_FIRST = 200


def _tagged_first(ranked: list[Match], text: str, images: QuerySet[Image], generation: Generation,
                  vector: np.ndarray) -> list[Match]:
    """Photos whose owner tagged them with exactly the query's words come first (kind "tag", the whole
    photo, their best CLIP score, best first): a person's word that a photo shows "birthday" outranks
    any model's guess, and finds it even where CLIP cannot."""
    tagged = list(images_tagged_by_person(images, text).values_list("pk", flat=True)[:MAX_TAGGED_FIRST])
    if not tagged:
        return ranked
    wholes = {image_id: (pk, [0, 0, x2, y2]) for image_id, pk, x2, y2 in Region.objects.filter(
        image_id__in=tagged, kind=Region.Kind.GLOBAL).values_list("image_id", "pk", "x2", "y2")}
    tagged = [image_id for image_id in tagged if image_id in wholes]  # processed: they have a whole-image region
    scores = generation.image_scores(np.atleast_2d(vector)[:1], tagged)[:, 0] if tagged else []
    first = [Match(image_id=image_id, score=float(score) if np.isfinite(score) else 0.0, kind="tag",
                   box=wholes[image_id][1], region_id=wholes[image_id][0]) for image_id, score in zip(tagged, scores)]
    first.sort(key=lambda m: (-m.score, -m.image_id))
    pinned = set(tagged)
    return first + [match for match in ranked if match.image_id not in pinned]


def _penalised(matches: list[Match], generation: Generation, negatives: tuple[Negative, ...],
               threshold: float) -> list[Match]:
    """`matches` less, for each negative term an image matches (its best region over the term's threshold),
    the excess times the term's weight; those still at or above `threshold`, best first."""
    if not matches:
        return matches
    scores = generation.image_scores(np.stack([n.vector for n in negatives]), [m.image_id for m in matches])
    over = np.maximum(scores - np.array([n.threshold for n in negatives]), 0.0)
    penalty = over @ np.array([n.weight for n in negatives])
    lowered = [replace(match, score=match.score - float(p)) for match, p in zip(matches, penalty)]
    kept = [match for match in lowered if match.score >= threshold]
    kept.sort(key=lambda m: (-m.score, -m.image_id))
    return kept


def _source_first(ranked: list[Match], data: bytes) -> list[Match]:
    """An uploaded photo that is a piece of one of the best SOURCE_CHECKED results — cropped from it
    and saved as cut, perhaps re-encoded — finds that photo first (kind "source", boxed where the piece
    lies): CLIP ranks every photo of the same kind of thing alike; the pixels tell which one it came
    from (search.duplicates.locate). The rest keep their order."""
    from search.vision.pixels import locate, LOCATE_SIDE

    checked = ranked[:settings.SOURCE_CHECKED]
    if not checked:
        return ranked
    part = _query_picture(data)
    stored = {pk: (name, (width, height)) for pk, name, width, height in Image.objects.filter(
        pk__in=[m.image_id for m in checked]).values_list("pk", "file", "width", "height")}
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


# --- Query vectors ----------------------------------------------------------------------------


def _query_picture(data: bytes):
    """An uploaded query image's pixels (validated already), as uploads are read: oriented, RGB."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    with PILImage.open(io.BytesIO(data)) as image:
        image.seek(0)
        return to_rgb(ImageOps.exif_transpose(image))


def _clip():
    from search.vision.runtime import ModelUnavailable
    from search.vision.registry import get_clip

    try:
        return get_clip()
    except ModelUnavailable as error:
        raise SearchUnavailable(
            "Searching by text, photo or drawn box is unavailable: the server is missing its CLIP model. "
            "“More like this” and region searches still work on processed images.",
            fix=str(error),
        ) from error


def query_vector(*, user, query: Query) -> tuple[np.ndarray, int | None]:
    """The unit vector to search with, and the id of the image it came from (to leave it out). With
    SIMILAR_BY_OBJECTS, "more like this" gives several (rows: the whole image, then its objects)."""

    if isinstance(query, TextQuery):
        text = " ".join(query.text.split())
        if not text:
            raise SearchError("Type something to search for.")
        if len(text) > settings.SEARCH_MAX_QUERY_CHARS:
            raise SearchError(
                f"The query is {len(text)} characters long; keep it under {settings.SEARCH_MAX_QUERY_CHARS}."
            )
        return _clip().embed_texts([text])[0], None
    if isinstance(query, ImageQuery):
        try:
            validate_image_bytes(query.data)
        except UploadRejected as error:
            raise SearchError(str(error)) from None
        return _clip().embed_images([_query_picture(query.data)])[0], None
    if isinstance(query, SimilarQuery):
        image = _visible_image(user, query.image_id)
        region = image.regions.filter(kind=Region.Kind.GLOBAL).first()
        if region is None:
            raise SearchError("This image has not been processed yet; try again when it is ready.")
        if not settings.SIMILAR_BY_OBJECTS:
            return _stored_vector(region), image.pk
        objects = list(image.regions.filter(kind=Region.Kind.OBJECT).order_by("pk"))
        return _stored_vectors([region] + objects), image.pk
    if isinstance(query, RegionQuery):
        region = Region.objects.filter(pk=query.region_id, image__in=images_visible_to(user)).first()
        if region is None:
            raise SearchError("No such region.")
        return _stored_vector(region), region.image_id
    if isinstance(query, VectorQuery):
        from search.vision.identity import current_model

        if query.model != current_model()[0]:
            raise SearchError("This search was made with another model; search with the photo again.")
        return np.frombuffer(query.vector, dtype=np.float32), None
    if isinstance(query, BoxQuery):
        image = _visible_image(user, query.image_id)
        x1, y1, x2, y2 = _checked_box(query.box, image)
        rgb = storage.read_rgb(image.file)
        return _clip().embed_images([rgb.crop((x1, y1, x2, y2))])[0], image.pk
    raise TypeError(f"not a query: {query!r}")


def query_from(*, text: str | None = None, image: bytes | None = None, image_id: int | None = None,
               region_id: int | None = None, box=None, image_weight: float = 1.0,
               exclude_weight: float = 1.0, stored: VectorQuery | None = None) -> Query | ComposedQuery:
    """The query a request describes: words (see parse_words), one photo (an image, image_id — with box:
    that region of it — or region_id), or words and a photo together, `image_weight` being the photo's
    weight against each phrase and `exclude_weight` each left-out phrase's. The search page and the API
    both go through here, so they agree on what a request means. Raises SearchError naming what to send."""
    photos = [name for name, value in (("image", image), ("image_id", image_id), ("region_id", region_id),
                                       ("a saved photo search", stored)) if value not in (None, "", b"")]
    if box not in (None, "") and image_id is None:
        raise SearchError("A box needs the image_id it is drawn on.")
    if len(photos) > 1:
        raise SearchError("Send at most one photo: image (a file), image_id (optionally with box) or region_id.")
    wanted, unwanted = parse_words(text or "")
    if not photos and not wanted:
        if unwanted:
            raise SearchError("Say what to search for, not only what to leave out (“beach -people”).")
        raise SearchError("Send text, image (a file), image_id (optionally with box) or region_id; "
                          "text may go with one photo.")
    terms = [Term(TextQuery(text=phrase)) for phrase in wanted]
    if photos:
        photo = stored or _photo_query(image=image, image_id=image_id, region_id=region_id, box=box)
        terms.append(Term(photo, image_weight))
    if len(terms) == 1 and not unwanted:
        return terms[0].query
    return ComposedQuery(positive=tuple(terms),
                         negative=tuple(Term(TextQuery(text=phrase), exclude_weight) for phrase in unwanted))


def parse_words(text: str) -> tuple[list[str], list[str]]:
    """Search words as phrases to find and phrases to leave out: "sunset + boat -people -dog" is
    (["sunset", "boat"], ["people", "dog"]). A "+" or "-" that starts a word starts a new phrase, which
    runs to the next one; a hyphen inside a word ("t-shirt") is just a hyphen."""
    wanted: list[str] = []
    unwanted: list[str] = []
    phrases: list[tuple[list[str], list[str]]] = [(wanted, [])]
    for word in text.split():
        if word[0] in "+-":
            phrases.append((unwanted if word[0] == "-" else wanted, []))
            word = word[1:]
        if word:
            phrases[-1][1].append(word)
    for target, words in phrases:
        if words:
            target.append(" ".join(words))
    return wanted, unwanted


def _photo_query(*, image, image_id, region_id, box) -> Query:
    if image:
        return ImageQuery(data=image)
    if region_id is not None:
        return RegionQuery(region_id=region_id)
    if box not in (None, ""):
        parts = box.split(",") if isinstance(box, str) else list(box)
        if len(parts) != 4:
            raise SearchError("A box is four numbers: [x1, y1, x2, y2].")
        return BoxQuery(image_id=image_id, box=tuple(parts))
    return SimilarQuery(image_id=image_id)


def describe(query: Query | ComposedQuery, *, image_name: str = "") -> str:
    """What was searched for, in words: results headings, recent and saved searches."""
    if isinstance(query, ComposedQuery):
        found = " + ".join(_describe_term(term, image_name) for term in query.positive)
        return " − ".join([found] + [_describe_term(term, image_name) for term in query.negative])
    return _describe_term(Term(query), image_name)


def _describe_term(term: Term, image_name: str) -> str:
    query = term.query
    if isinstance(query, ImageQuery):
        words = f"photos like “{image_name}”" if image_name else "photos like an uploaded one"
    elif isinstance(query, VectorQuery):
        words = "photos like the one you searched with"
    elif isinstance(query, SimilarQuery):
        words = "more like this photo"
    elif isinstance(query, RegionQuery):
        words = "this object"
    elif isinstance(query, BoxQuery):
        words = "the region you drew"
    else:
        words = f"“{query.text}”"
    return words if term.weight == 1 else f"{words} (weight {term.weight:g})"


def as_dict(query: Query | ComposedQuery) -> dict:
    """The query as it was understood, for showing back: {"positive": [terms], "negative": [terms]},
    each term {"kind", "weight"} and what it names (text, image_id, region_id, box)."""
    if not isinstance(query, ComposedQuery):
        query = ComposedQuery(positive=(Term(query),))

    def term(t: Term) -> dict:
        q = t.query
        named = {TextQuery: lambda: {"kind": "text", "text": q.text},
                 ImageQuery: lambda: {"kind": "image"},
                 SimilarQuery: lambda: {"kind": "similar", "image_id": q.image_id},
                 RegionQuery: lambda: {"kind": "region", "region_id": q.region_id},
                 BoxQuery: lambda: {"kind": "box", "image_id": q.image_id, "box": [float(v) for v in q.box]},
                 VectorQuery: lambda: {"kind": "image"}}
        return {**named[type(q)](), "weight": t.weight}

    return {"positive": [term(t) for t in query.positive], "negative": [term(t) for t in query.negative]}


def _visible_image(user, image_id: int) -> Image:
    image = images_visible_to(user).filter(pk=image_id).first()
    if image is None:
        raise SearchError("No such image.")
    return image


def _stored_vector(region: Region) -> np.ndarray:
    return _stored_vectors([region])[0]


def _stored_vectors(regions: list[Region]) -> np.ndarray:
    """The regions' vectors as rows, if the configured model made them all."""
    from search.vision.identity import current_model

    model, _ = current_model()
    if any(region.embedding_model != model for region in regions):
        raise SearchError("This image was embedded with another model; reprocess it first.")
    return np.stack([region.vector for region in regions])


def _checked_box(box, image: Image) -> tuple[int, int, int, int]:
    try:
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    except (TypeError, ValueError, OverflowError):  # OverflowError: inf, 1e400
        raise SearchError("A box is four numbers: [x1, y1, x2, y2].") from None
    if not (0 <= x1 < x2 <= image.width and 0 <= y1 < y2 <= image.height):
        raise SearchError(
            f"The box [{x1}, {y1}, {x2}, {y2}] is not inside the image ({image.width}x{image.height}); "
            f"use 0 <= x1 < x2 <= {image.width} and 0 <= y1 < y2 <= {image.height}."
        )
    return x1, y1, x2, y2
