"""Recent and saved searches: recording them, saving one under a name, and what is new since a saved
search was last opened. Every function takes the person and touches only their own records."""

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from search.errors import SearchError
from search.models import RecentSearch, SavedSearch
from search.queries import VectorQuery
from search.query import SearchPage
from search.request import SearchRequest
from search.vision.identity import current_model

# Suggestions offered in the header search box.
SUGGESTIONS = 8


def recent_record(
    *, user, params: dict[str, str], description: str, photo_vector: np.ndarray | None = None, model: str = ""
) -> RecentSearch:
    """Remember a search `user` ran, keeping the newest RECENT_SEARCHES_KEPT. The same words (or the
    same photo) run again, with these filters or others, are one entry that moves to the top with
    the latest filters: a list of five "a red circle" told nobody which was which."""
    description = description[:600]
    with transaction.atomic():
        vector = _vector_bytes(photo_vector)
        alike = [  # at most RECENT_SEARCHES_KEPT rows
            record
            for record in RecentSearch.objects.select_for_update().filter(owner=user)
            if (record.description == description or record.params == params)
            and (bytes(record.vector) if record.by_photo else None) == vector
        ]
        RecentSearch.objects.filter(pk__in=[r.pk for r in alike if r.params != params]).delete()
        same = next((r for r in alike if r.params == params), None)
        if same is not None:
            same.created_at = timezone.now()
            same.save(update_fields=["created_at"])
            return same
        record = RecentSearch.objects.create(
            owner=user,
            params=params,
            description=description,
            vector=vector,
            embedding_model=model if vector is not None else "",
        )
        stale = RecentSearch.objects.filter(owner=user).values_list("pk", flat=True)[settings.RECENT_SEARCHES_KEPT :]
        RecentSearch.objects.filter(pk__in=list(stale)).delete()
    return record


def _vector_bytes(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def recent_suggestions(user) -> list[str]:
    """The words of `user`'s recent searches, newest first, each once."""
    texts: list[str] = []
    for params in RecentSearch.objects.filter(owner=user).values_list("params", flat=True)[:50]:
        text = params.get("q", "")
        if text and text not in texts:
            texts.append(text)
        if len(texts) == SUGGESTIONS:
            break
    return texts


def recent_clear(*, user) -> int:
    return RecentSearch.objects.filter(owner=user).delete()[0]


def offered_name(description: str) -> str:
    """The name a search is offered to be saved under: its description, without the quotes around
    it when it is one phrase (“a red circle” is saved as a red circle, and shown “a red circle”)."""
    inner = description[1:-1]
    if description.startswith("“") and description.endswith("”") and "“" not in inner and "”" not in inner:
        return inner
    return description


def saved_create(*, user, recent: RecentSearch, name: str) -> SavedSearch:
    """Save one of `user`'s recent searches as `name`; its matches from now on count as new."""
    name = offered_name(" ".join(name.split()))[:100] or offered_name(recent.description)[:100]
    try:
        with transaction.atomic():
            return SavedSearch.objects.create(
                owner=user,
                name=name,
                params=recent.params,
                description=recent.description,
                vector=recent.vector,
                embedding_model=recent.embedding_model,
                last_viewed_at=timezone.now(),
            )
    except IntegrityError:
        raise SearchError(f"You already have a saved search named “{name}”; choose another name.") from None


def stored_query(record) -> VectorQuery | None:
    """The photo a saved or recent search by an uploaded photo searched with, if it was one."""
    return VectorQuery(vector_bytes=bytes(record.vector), model=record.embedding_model) if record.by_photo else None


def new_image_ids(page: SearchPage, since) -> set[int]:
    """Results that became searchable after `since` (processed, so found by search, since then)."""
    return {r.image.pk for r in page.results if r.image.processed_at and r.image.processed_at > since}


def saved_viewed(saved: SavedSearch) -> None:
    SavedSearch.objects.filter(pk=saved.pk).update(last_viewed_at=timezone.now())


# "New" counts on the saved-searches page look at this many best matches of each.
NEW_COUNT_DEPTH = 50


def run_record(*, user, record, page: int = 1, page_size: int | None = None) -> tuple[SearchRequest, SearchPage]:
    """Run a saved or recent search again for `user`: (its request, a SearchPage). Raises SearchError."""
    request = SearchRequest.from_params(record.params, stored=stored_query(record))
    return request, request.run(user=user, page=page, page_size=page_size)


def saved_with_new_counts(user) -> list[tuple[SavedSearch, int | None, str]]:
    """Each of `user`'s saved searches with how many of its best NEW_COUNT_DEPTH matches are new since
    it was last opened (None, and why, when it cannot run now)."""
    listed = []
    for saved in SavedSearch.objects.filter(owner=user):
        try:
            _, page = run_record(user=user, record=saved, page_size=min(NEW_COUNT_DEPTH, settings.SEARCH_MAX_PAGE_SIZE))
            listed.append((saved, len(new_image_ids(page, saved.last_viewed_at)), ""))
        except SearchError as error:
            listed.append((saved, None, str(error)))
    return listed


def saved_from_api(*, user, name: str, request: SearchRequest) -> SavedSearch:
    """Save a search an API client describes, after checking that it runs (an uploaded picture is kept
    as its vector). Raises SearchError."""
    page = request.run(user=user, page_size=1)
    vector = page.photo_vector
    recent = RecentSearch(
        owner=user,
        params=request.to_params(),
        description=request.query.describe(),
        vector=_vector_bytes(vector),
        embedding_model=current_model()[0] if vector is not None else "",
    )
    return saved_create(user=user, recent=recent, name=name)
