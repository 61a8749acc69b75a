"""The search service: one query in, a page of images the user may see out.

search() plans and runs a query (search.queries): the query's vector -> FAISS top-k restricted to
the regions this user may see (and the filters leave) -> rows from the database, visibility checked
again -> best match per image -> threshold -> the query's own refinements -> a page of results
(search.ranking does the ranking).
"""

import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import numpy as np
from django.conf import settings
from django.db.models import QuerySet

from gallery.models import Image, Region
from gallery.places import images_at
from gallery.selectors import album_images, albums_visible_to, images_searchable_by
from gallery.tags import images_tagged
from search.errors import SearchError, SearchUnavailable
from search.index import Generation, IndexUnavailable, Visibility, get_index, scan_pool
from search.queries import AnyQuery, Refinement, TextQuery
from search.ranking import all_of, rank

logger = logging.getLogger(__name__)

Scope = Literal["all", "mine", "public"]
MatchKind = Literal["both", "global", "object"]
SCOPES = ("all", "mine", "public")
MATCH_KINDS = ("both", "global", "object")
# Nobody pages this deep; a deeper page would rank the whole library for nothing.
MAX_PAGE = 1000


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
    place: str = ""  # photos taken there, as far as the person may know (gallery.places.images_at)

    def __bool__(self) -> bool:
        return any(
            (
                self.taken_from,
                self.taken_to,
                self.album_id is not None,
                self.camera,
                self.favourites,
                self.tag,
                self.place,
            )
        )

    def apply(self, images: QuerySet[Image], user) -> QuerySet[Image]:
        if self.taken_from and self.taken_to and self.taken_from > self.taken_to:
            raise SearchError("The “from” date is after the “to” date; swap them.")
        if self.taken_from:
            # The camera's own days (Image.shot_local, a wall clock kept as UTC).
            images = images.filter(shot_local__gte=datetime.combine(self.taken_from, time.min, tzinfo=UTC))
        if self.taken_to:
            images = images.filter(
                shot_local__lt=datetime.combine(self.taken_to + timedelta(days=1), time.min, tzinfo=UTC)
            )
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
        if self.place:
            images = images_at(images, self.place, user)
        return images


@dataclass(frozen=True)
class SearchResult:
    image: Image
    score: float
    kind: str  # "global", "object", "tag" or "source" (search.ranking.Match)
    box: list[int]
    region_id: int


@dataclass(frozen=True)
class SearchPage:
    results: list[SearchResult]
    page: int
    page_size: int
    has_next: bool
    # The vector of the picture searched by (uploaded, or kept from before): what a saved search of it keeps.
    photo_vector: np.ndarray | None = None


def search(
    *,
    user,
    query: AnyQuery,
    scope: Scope = "all",
    kind: MatchKind = "both",
    min_score: float | None = None,
    page: int = 1,
    page_size: int | None = None,
    filters: Filters | None = None,
) -> SearchPage:
    """Run `query` for `user` among the photos `filters` leave; `min_score` replaces the query's own
    threshold. Raises SearchError for anything the person must fix."""
    page_size = _checked_options(scope=scope, kind=kind, page=page, page_size=page_size)
    if isinstance(query, TextQuery) and not (filters and filters.place) and (at := query.at_place(user)):
        query, place = at  # "a dog in Paris": "a dog", among the photos taken in Paris
        filters = replace(filters or Filters(), place=place)
    generation = _current_generation()  # one generation for every round of this query
    images = images_searchable_by(user, scope)
    only_image_ids = None
    if filters:
        images = filters.apply(images, user)
        only_image_ids = np.fromiter(images.values_list("pk", flat=True), dtype=np.int64)
    visibility = Visibility(
        user_id=user.pk if user.is_authenticated else None, scope=scope, kind=kind, only_image_ids=only_image_ids
    )
    # With no photo of the library to leave out, the bitmap of what this user may see is built
    # while the query is being embedded.
    early_masks = None if query.from_stored_photo else scan_pool().submit(generation.allowed, visibility)
    plan = query.plan(user)
    if plan.source_image_id is not None:
        images = images.exclude(pk=plan.source_image_id)  # "more like this" should not answer with itself
    regions = Region.objects.filter(image__in=images)
    if plan.leave_out is not None:
        regions = regions.exclude(plan.leave_out)
    if kind != "both":
        regions = regions.filter(kind=kind)
    masks = (
        early_masks.result()
        if early_masks is not None
        else generation.allowed(replace(visibility, exclude_image_id=plan.source_image_id))
    )
    if plan.all_of:
        ranked = all_of(
            [(term.vector, term.containment if min_score is None else float(min_score)) for term in plan.all_of],
            generation,
            masks,
            regions,
            handicap=plan.handicap,
            negatives=plan.negatives,
        )
    else:
        ranked = rank(
            plan.vector,
            generation,
            masks,
            regions,
            threshold=plan.threshold if min_score is None else float(min_score),
            handicap=plan.handicap,
            wanted=max(page * page_size + 1, settings.SOURCE_CHECKED),
            negatives=plan.negatives,
            copy_hash=plan.copy_hash,
        )
    if plan.margin is not None and min_score is None and ranked:
        best = max(match.score for match in ranked)
        ranked = [match for match in ranked if match.score >= best - plan.margin]
    ranked = query.refine(
        ranked, Refinement(images=images, generation=generation, vector=plan.vector, kind=kind, user=user)
    )
    start = (page - 1) * page_size
    shown = ranked[start : start + page_size]
    # Model objects only for the page shown, read through the visibility rule once more.
    by_id = images.select_related("owner").in_bulk([match.image_id for match in shown])
    results = [
        SearchResult(image=by_id[m.image_id], score=m.score, kind=m.kind, box=m.box, region_id=m.region_id)
        for m in shown
        if m.image_id in by_id
    ]
    return SearchPage(
        results=results,
        page=page,
        page_size=page_size,
        has_next=len(ranked) > start + page_size,
        photo_vector=plan.photo_vector,
    )


def _checked_options(*, scope: str, kind: str, page: int, page_size: int | None) -> int:
    """The page size to use; SearchError for an option out of range."""
    if scope not in SCOPES:
        raise SearchError(f"Unknown scope {scope!r}; use one of {', '.join(SCOPES)}.")
    if kind not in MATCH_KINDS:
        raise SearchError(f"Unknown match kind {kind!r}; use one of {', '.join(MATCH_KINDS)}.")
    page_size = page_size or settings.SEARCH_PAGE_SIZE
    if not 1 <= page_size <= settings.SEARCH_MAX_PAGE_SIZE:
        raise SearchError(f"page_size must be between 1 and {settings.SEARCH_MAX_PAGE_SIZE}.")
    if not 1 <= page <= MAX_PAGE:
        raise SearchError(f"page must be between 1 and {MAX_PAGE}.")
    return page_size


def _current_generation() -> Generation:
    try:
        return get_index().current()
    except IndexUnavailable:
        logger.warning("No search index has been published yet; is `manage.py run_indexer` running?")
        raise SearchUnavailable("The search index is still being built; try again in a minute.") from None
