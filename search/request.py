"""One search request (the query, whose photos, which matches, the filters), however it arrives.

The search page's form (search.web.forms.SearchForm) and the API's serializer (search.web.api.SearchApi)
each build a SearchRequest; saved and recent searches keep `to_params()` (the search page's
parameters, so opening one is opening its URL) and run it again with `from_params()`. The page's
parameters are parsed in one place, SearchParams; `query_from` turns the parts of a request into a
query (search.queries) for the page and the API alike.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from django import forms

from gallery.places import NAME_CHARS
from search.errors import SearchError
from search.queries import (
    MAX_WEIGHT,
    AnyQuery,
    BoxQuery,
    ComposedQuery,
    ImageQuery,
    Query,
    RegionQuery,
    SimilarQuery,
    Term,
    TextQuery,
    VectorQuery,
)
from search.query import MATCH_KINDS, SCOPES, Filters, MatchKind, Scope, SearchPage, search

# Ids in parameters are database keys: larger ones cannot name anything (and would not fit a query).
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class SearchRequest:
    query: AnyQuery
    scope: Scope = "all"
    kind: MatchKind = "both"
    filters: Filters = field(default_factory=Filters)

    @classmethod
    def from_params(cls, params: Mapping[str, str], *, stored: VectorQuery | None = None) -> "SearchRequest":
        """The request the search page's parameters describe; `stored`: the picture of a saved or recent
        search by an uploaded photo. Raises SearchError naming what is wrong."""
        form = SearchParams(params)
        if not form.is_valid():
            problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
            raise SearchError(f"Check the search: {problems}")
        return form.search_request(stored=stored)

    def to_params(self) -> dict[str, str]:
        """The search page's parameters for this request (an uploaded picture's vector is kept apart)."""
        params = dict(self.query.as_params())
        if self.scope != "all":
            params["scope"] = self.scope
        if self.kind != "both":
            params["kind"] = self.kind
        filters = self.filters
        named = {
            "taken_from": filters.taken_from and filters.taken_from.isoformat(),
            "taken_to": filters.taken_to and filters.taken_to.isoformat(),
            "album": None if filters.album_id is None else str(filters.album_id),
            "camera": filters.camera,
            "favourites": "on" if filters.favourites else "",
            "tag": filters.tag,
            "place": filters.place,
        }
        params.update({name: value for name, value in named.items() if value})
        return params

    def run(self, *, user, page: int = 1, page_size: int | None = None, min_score: float | None = None) -> SearchPage:
        return search(
            user=user,
            query=self.query,
            scope=self.scope,
            kind=self.kind,
            filters=self.filters,
            page=page,
            page_size=page_size,
            min_score=min_score,
        )


class SearchParams(forms.Form):
    """The search page's parameters: what its URL, a saved search and a recent search hold."""

    q = forms.CharField(required=False, strip=True)
    similar = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    region = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    box_image = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    box = forms.CharField(required=False)
    image_weight = forms.FloatField(required=False, min_value=0.1, max_value=MAX_WEIGHT)
    exclude_weight = forms.FloatField(required=False, min_value=0.1, max_value=MAX_WEIGHT)
    scope = forms.ChoiceField(required=False, choices=[(scope, scope) for scope in SCOPES])
    kind = forms.ChoiceField(required=False, choices=[(kind, kind) for kind in MATCH_KINDS])
    taken_from = forms.DateField(required=False)
    taken_to = forms.DateField(required=False)
    album = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    camera = forms.CharField(required=False, max_length=100)
    favourites = forms.BooleanField(required=False)
    tag = forms.CharField(required=False, max_length=64)
    place = forms.CharField(required=False, max_length=NAME_CHARS)

    def filters(self) -> Filters:
        data = self.cleaned_data
        return Filters(
            taken_from=data.get("taken_from"),
            taken_to=data.get("taken_to"),
            album_id=data.get("album"),
            camera=data.get("camera") or "",
            favourites=bool(data.get("favourites")),
            tag=data.get("tag") or "",
            place=data.get("place") or "",
        )

    def search_request(self, *, uploaded: ImageQuery | None = None, stored: VectorQuery | None = None) -> SearchRequest:
        """The request the (valid) parameters ask for; `uploaded`: a picture sent with them; `stored`: the
        vector of a saved or recent search by a photo. Raises SearchError naming what to change."""
        data = self.cleaned_data
        query = query_from(
            text=data.get("q"),
            image=uploaded,
            image_id=data.get("similar"),
            box_image_id=data.get("box_image"),
            region_id=data.get("region"),
            box=data.get("box"),
            stored=stored,
            image_weight=data.get("image_weight") or 1.0,
            exclude_weight=data.get("exclude_weight") or 1.0,
        )
        return SearchRequest(
            query=query, scope=data.get("scope") or "all", kind=data.get("kind") or "both", filters=self.filters()
        )


def query_from(
    *,
    text: str | None = None,
    image: ImageQuery | None = None,
    image_id: int | None = None,
    box_image_id: int | None = None,
    region_id: int | None = None,
    box=None,
    image_weight: float = 1.0,
    exclude_weight: float = 1.0,
    stored: VectorQuery | None = None,
) -> AnyQuery:
    """The query a request describes: words (see parse_words), one photo (an uploaded `image`, one of
    the library's — `image_id` for more like this, `box_image_id` with `box` for a region of it, or
    `region_id` — or a `stored` picture), or words and a photo together, `image_weight` being the
    photo's weight against each phrase and `exclude_weight` each left-out phrase's. Raises SearchError
    naming what to send."""
    photos = [value for value in (image, image_id, box_image_id, region_id, stored) if value not in (None, "", b"")]
    if box not in (None, "") and box_image_id is None:
        raise SearchError("A box needs the image_id it is drawn on.")
    if len(photos) > 1:
        raise SearchError(
            "Search with at most one photo at a time: image (a file), image_id (more like this; "
            "with box, a region of it) or region_id."
        )
    wanted, unwanted = parse_words(text or "")
    if not photos and not wanted:
        if unwanted:
            raise SearchError("Say what to search for, not only what to leave out (“beach -people”).")
        raise SearchError(
            "Send text, image (a file), image_id (optionally with box) or region_id; text may go with one photo."
        )
    terms = [Term(TextQuery(text=phrase)) for phrase in wanted]
    if photos:
        photo = (
            image
            or stored
            or _library_photo(image_id=image_id, box_image_id=box_image_id, region_id=region_id, box=box)
        )
        terms.append(Term(photo, image_weight))
    if len(terms) == 1 and not unwanted:
        return terms[0].query
    return ComposedQuery(
        positive=tuple(terms), negative=tuple(Term(TextQuery(text=phrase), exclude_weight) for phrase in unwanted)
    )


def _library_photo(*, image_id, box_image_id, region_id, box) -> Query:
    if region_id is not None:
        return RegionQuery(region_id=region_id)
    if box_image_id is not None:
        parts = box.split(",") if isinstance(box, str) else list(box or ())
        if len(parts) != 4:
            raise SearchError("A box is four numbers: [x1, y1, x2, y2].")
        return BoxQuery(image_id=box_image_id, box=tuple(parts))
    return SimilarQuery(image_id=image_id)


def parse_words(text: str) -> tuple[list[str], list[str]]:
    """Search words as phrases to find and phrases to leave out: "sunset + boat -people -dog" is
    (["sunset", "boat"], ["people", "dog"]). A "+" or "-" that starts a word starts a new phrase, which
    runs to the next one; a hyphen inside a word ("t-shirt") is just a hyphen."""
    wanted: list[str] = []
    unwanted: list[str] = []
    phrases: list[tuple[list[str], list[str]]] = [(wanted, [])]
    for word in text.split():
        rest = word
        if word[0] in "+-":
            phrases.append((unwanted if word[0] == "-" else wanted, []))
            rest = word[1:]
        if rest:
            phrases[-1][1].append(rest)
    for target, words in phrases:
        if words:
            target.append(" ".join(words))
    return wanted, unwanted
