"""The kinds of query, one class each: what a person searches with, and all that follows from it.

    TextQuery      words ("a red circle"), through CLIP's text tower
    ImageQuery     an uploaded picture: validated like uploads, never stored
    VectorQuery    an uploaded picture searched before, from the vector a saved or recent search kept
    SimilarQuery   "more like this": a stored photo's whole-image vector (and with SIMILAR_BY_OBJECTS
                   its objects', texture repeated within a photo left out on both sides)
    RegionQuery    a stored region's vector
    BoxQuery       a box drawn on a stored photo, cropped and embedded
    ComposedQuery  terms to match together and terms to leave out ("this photo, but at night",
                   "sunset + boat -people")

Each knows its `vector(user)`, its default `threshold()`, how to `describe()` itself in words, its
parameters on the search page (`as_params()`), how the API shows it back (`as_dict()`), what the
results page shows of it (`preview(user)`) and how it turns into a `plan(user)` for search.query.
A new kind of query is one class here (and its parameters in search.request).

A composed query searches with the weighted mean of its positive terms' vectors, so a score is the
weighted mean of the terms' cosine similarities and the threshold the same mean of theirs (with
COMPOSED_MARGIN: what scores within that margin of the query's best, over MIN_COMPOSED_SIMILARITY); phrases
joined by "+" instead ask for photos that hold a match for each, over each phrase's own threshold,
ranked by the weaker (search.ranking.all_of). An image that matches a negative term (any of its
regions above that term's exclude_threshold) loses the excess, times the term's weight
(search.ranking.penalised).
"""

import base64
import io
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import ClassVar, NamedTuple

import numpy as np
from django.conf import settings
from django.db.models import Q, QuerySet
from PIL import Image as PILImage
from PIL import ImageOps

from gallery import storage
from gallery.imaging import to_rgb
from gallery.models import Image, Region
from gallery.places import NAME_CHARS, images_at
from gallery.selectors import images_visible_to
from gallery.validation import UploadRejected, validate_image_bytes
from search.errors import SearchError, SearchUnavailable
from search.index import Generation
from search.ranking import Match, Negative, placed_first, source_first, tagged_first
from search.vision.identity import current_model
from search.vision.pixels import signed_hash
from search.vision.proposers import with_context
from search.vision.registry import get_clip
from search.vision.runtime import ModelUnavailable

# "<words> in <place>" (or "at"): the last "in" or "at" splits, so "a cat in a box in Paris" is
# "a cat in a box" taken in Paris.
AT_PLACE = re.compile(r"^(?P<words>.+\S)\s+(?:in|at)\s+(?P<place>[^\s].*)$", re.IGNORECASE)
# Weights a person may give a term of a composed query.
MAX_WEIGHT = 10.0
# The photo searched with is shown above the results, this many pixels on its longest side.
QUERY_PREVIEW_PX = 240


class Embedded(NamedTuple):
    vector: np.ndarray  # a unit vector, or several as rows (a region scores its best row)
    source_image_id: int | None  # the stored photo it came from, left out of the results


@dataclass(frozen=True)
class Plan:
    """How to run a query: what to search with and what counts as a match."""

    vector: np.ndarray  # one row, or several (a region scores its best row)
    source_image_id: int | None  # the photo a query came from, left out of its results
    threshold: float
    handicap: float  # WHOLE_IMAGE_HANDICAP, or 0 where the query is about a whole photo
    negatives: tuple[Negative, ...] = ()
    photo_vector: np.ndarray | None = None  # the vector of a picture searched by: what a saved search keeps
    # A picture's perceptual hash: the photos it is a copy of (saved again, re-encoded, resized) come
    # first, their whole image not lowered by the handicap (search.ranking.best_per_image).
    copy_hash: int | None = None
    # Phrases joined by "+": each term's own plan; an image must match every one (search.ranking.all_of)
    # over its `containment` floor.
    all_of: tuple["Plan", ...] = ()
    # Over what a region shows the term is in the photo: the floor of a left-out phrase, and of each
    # phrase joined by "+" (whose conjunction is itself the filter a single phrase's show floor is).
    containment: float = 0.0
    # Regions that may not be found (Region rows matching it): "more like this" leaves out repeated texture.
    leave_out: Q | None = None
    # Shown: what scores within this of the query's best result, over `threshold` (COMPOSED_MARGIN).
    margin: float | None = None


@dataclass(frozen=True)
class Refinement:
    """What a query's `refine` may look at once the vectors have ranked the images."""

    images: QuerySet[Image]  # what the search may show (visibility, scope, filters)
    generation: Generation
    vector: np.ndarray
    kind: str  # the match kind asked for: both, global or object
    user: object  # who searches (what they may know of others' photos: where they were taken)


class Query(ABC):
    """One thing to search with. Subclasses are frozen dataclasses."""

    kind: ClassVar[str]  # as the API names it
    from_stored_photo: ClassVar[bool] = False  # names a photo of the library (known before embedding)
    about_whole_photo: ClassVar[bool] = False  # asks whether photos are alike, not what is in one
    a_picture: ClassVar[bool] = False  # a picture from outside the library: a saved search keeps its vector

    @abstractmethod
    def vector(self, user) -> Embedded:
        """The vector(s) to search with. Raises SearchError for what the person must fix."""

    def threshold(self) -> float:
        """The default floor under which a match is not shown."""
        return settings.MIN_IMAGE_SIMILARITY

    def exclude_threshold(self) -> float:
        """Over what a left-out term of this kind lowers an image."""
        return self.threshold()

    @abstractmethod
    def words(self) -> str:
        """What this term searches for, in words."""

    def named(self) -> dict:
        """What the term names, for the API: {"kind", and its text, image_id, region_id or box}."""
        return {"kind": self.kind}

    def as_params(self) -> dict[str, str]:
        """The search page's parameters for this term (an uploaded picture has none: its vector is kept)."""
        return {}

    def preview(self, user) -> dict:
        """What the results page shows of the query: {"image", "box"} of a stored photo, or {"data_uri"}."""
        return {}

    def refine(self, ranked: list[Match], context: Refinement) -> list[Match]:
        """The ranked matches, reordered where this kind of query knows better than the vectors."""
        return ranked

    def plan(self, user) -> Plan:
        vector, source = self.vector(user)
        return Plan(
            vector=vector,
            source_image_id=source,
            threshold=self.threshold(),
            containment=self.exclude_threshold(),
            handicap=0.0 if self.about_whole_photo else settings.WHOLE_IMAGE_HANDICAP,
            photo_vector=vector if self.a_picture else None,
        )

    # A single query reads like a composed query of one term.
    def describe(self) -> str:
        """What was searched for, in words: results headings, recent and saved searches."""
        return ComposedQuery(positive=(Term(self),)).describe()

    def as_dict(self) -> dict:
        """The query as it was understood: {"positive": [terms], "negative": [terms]}."""
        return ComposedQuery(positive=(Term(self),)).as_dict()


@dataclass(frozen=True)
class TextQuery(Query):
    text: str
    kind: ClassVar[str] = "text"

    def vector(self, user) -> Embedded:
        text = " ".join(self.text.split())
        if not text:
            raise SearchError("Type something to search for.")
        if len(text) > settings.SEARCH_MAX_QUERY_CHARS:
            raise SearchError(
                f"The query is {len(text)} characters long; keep it under {settings.SEARCH_MAX_QUERY_CHARS}."
            )
        return Embedded(_clip().embed_texts([text])[0], None)

    def threshold(self) -> float:
        return settings.MIN_SIMILARITY

    def exclude_threshold(self) -> float:
        """A phrase may have its own floor, lower than the one that shows results
        (MIN_EXCLUDE_SIMILARITY), so that a strict show floor still leaves out what the phrase names."""
        if settings.MIN_EXCLUDE_SIMILARITY is not None:
            return settings.MIN_EXCLUDE_SIMILARITY
        return self.threshold()

    def words(self) -> str:
        return f"“{self.text}”"

    def named(self) -> dict:
        return {"kind": self.kind, "text": self.text}

    def as_params(self) -> dict[str, str]:
        return {"q": self.text}

    def at_place(self, user) -> tuple["TextQuery", str] | None:
        """ "a dog in Paris": the words before "in" (or "at") and the place after it, where that names
        a place of a photo `user` may know the place of; else None (the words are all CLIP's)."""
        match = AT_PLACE.match(" ".join(self.text.split()))
        if match is None or len(match["place"]) > NAME_CHARS:
            return None
        if not images_at(images_visible_to(user), match["place"], user).exists():
            return None
        return TextQuery(text=match["words"]), match["place"]

    def refine(self, ranked: list[Match], context: Refinement) -> list[Match]:
        if context.kind == "object":
            return ranked
        ranked = placed_first(ranked, self.text, context.images, context.user, context.generation, context.vector)
        return tagged_first(ranked, self.text, context.images, context.generation, context.vector)


@dataclass(frozen=True)
class ImageQuery(Query):
    data: bytes  # validated like uploads, never stored
    name: str = field(default="", compare=False)  # the file's name, for describing the query
    kind: ClassVar[str] = "image"
    a_picture: ClassVar[bool] = True

    def vector(self, user) -> Embedded:
        try:
            validate_image_bytes(self.data)
        except UploadRejected as error:
            raise SearchError(str(error)) from None
        return Embedded(_clip().embed_images([self.picture()])[0], None)

    def picture(self) -> PILImage.Image:
        """The uploaded picture's pixels (validated already), as uploads are read: oriented, RGB.
        Decoded once per query (its vector, its hash and the source check share it): do not change it."""
        return self._pixels

    @cached_property
    def _pixels(self) -> PILImage.Image:
        with PILImage.open(io.BytesIO(self.data)) as image:
            image.seek(0)
            return to_rgb(ImageOps.exif_transpose(image))

    def words(self) -> str:
        return f"photos like “{self.name}”" if self.name else "photos like an uploaded one"

    def preview(self, user) -> dict:
        """A small copy inline: uploads are never stored."""
        picture = self.picture().copy()
        picture.thumbnail((QUERY_PREVIEW_PX, QUERY_PREVIEW_PX))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=80)
        return {"data_uri": "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()}

    def plan(self, user) -> Plan:
        return replace(super().plan(user), copy_hash=signed_hash(self.picture()))

    def refine(self, ranked: list[Match], context: Refinement) -> list[Match]:
        if context.kind == "global" or not ranked:
            return ranked
        return source_first(ranked, self.picture())


@dataclass(frozen=True)
class VectorQuery(Query):
    """A search by an uploaded photo, run again from its saved vector (search.models.SearchRecord)."""

    vector_bytes: bytes  # float32
    model: str  # the model that made it
    kind: ClassVar[str] = "image"
    a_picture: ClassVar[bool] = True

    def vector(self, user) -> Embedded:
        if self.model != current_model()[0]:
            raise SearchError("This search was made with another model; search with the photo again.")
        return Embedded(np.frombuffer(self.vector_bytes, dtype=np.float32), None)

    def words(self) -> str:
        return "photos like the one you searched with"


@dataclass(frozen=True)
class SimilarQuery(Query):
    """ "More like this": that image's whole-image vector (with SIMILAR_BY_OBJECTS, its objects' too)."""

    image_id: int
    kind: ClassVar[str] = "similar"
    from_stored_photo: ClassVar[bool] = True
    about_whole_photo: ClassVar[bool] = True

    def vector(self, user) -> Embedded:
        image = _visible_image(user, self.image_id)
        region = image.regions.filter(kind=Region.Kind.GLOBAL).first()
        if region is None:
            raise SearchError("This image has not been processed yet; try again when it is ready.")
        if not settings.SIMILAR_BY_OBJECTS:
            return Embedded(_stored_vectors([region])[0], image.pk)
        objects = image.regions.filter(kind=Region.Kind.OBJECT).order_by("pk")
        if (repeated := repeated_objects()) is not None:
            objects = objects.exclude(repeated)
        return Embedded(_stored_vectors([region, *objects]), image.pk)

    def plan(self, user) -> Plan:
        return replace(super().plan(user), leave_out=repeated_objects() if settings.SIMILAR_BY_OBJECTS else None)

    def threshold(self) -> float:
        if settings.MIN_SIMILAR_SIMILARITY is not None:
            return settings.MIN_SIMILAR_SIMILARITY
        return settings.MIN_IMAGE_SIMILARITY

    def words(self) -> str:
        return "more like this photo"

    def named(self) -> dict:
        return {"kind": self.kind, "image_id": self.image_id}

    def as_params(self) -> dict[str, str]:
        return {"similar": str(self.image_id)}

    def preview(self, user) -> dict:
        return {"image": images_visible_to(user).filter(pk=self.image_id).first()}


@dataclass(frozen=True)
class RegionQuery(Query):
    region_id: int
    kind: ClassVar[str] = "region"
    from_stored_photo: ClassVar[bool] = True

    def vector(self, user) -> Embedded:
        region = Region.objects.filter(pk=self.region_id, image__in=images_visible_to(user)).first()
        if region is None:
            raise SearchError("No such region.")
        return Embedded(_stored_vectors([region])[0], region.image_id)

    def words(self) -> str:
        return "this object"

    def named(self) -> dict:
        return {"kind": self.kind, "region_id": self.region_id}

    def as_params(self) -> dict[str, str]:
        return {"region": str(self.region_id)}

    def preview(self, user) -> dict:
        region = (
            Region.objects.filter(pk=self.region_id, image__in=images_visible_to(user)).select_related("image").first()
        )
        return {"image": region.image, "box": region.box} if region else {}


@dataclass(frozen=True)
class BoxQuery(Query):
    image_id: int
    box: tuple  # x1, y1, x2, y2 in the image's upright pixels, as given (checked when embedded)
    kind: ClassVar[str] = "box"
    from_stored_photo: ClassVar[bool] = True

    def vector(self, user) -> Embedded:
        image = _visible_image(user, self.image_id)
        x1, y1, x2, y2 = _checked_box(self.box, image)
        rgb = storage.read_rgb(image.file)
        # Cut out as a stored region is, with its context (REGION_CROP_CONTEXT).
        crop = rgb.crop(with_context((x1, y1, x2, y2), *rgb.size, settings.REGION_CROP_CONTEXT))
        return Embedded(_clip().embed_images([crop])[0], image.pk)

    def words(self) -> str:
        return "the region you drew"

    def named(self) -> dict:
        return {"kind": self.kind, "image_id": self.image_id, "box": [float(v) for v in self.box]}

    def as_params(self) -> dict[str, str]:
        return {"box_image": str(self.image_id), "box": ",".join(f"{float(v):g}" for v in self.box)}

    def preview(self, user) -> dict:
        return {
            "image": images_visible_to(user).filter(pk=self.image_id).first(),
            "box": [int(round(float(v))) for v in self.box],
        }


@dataclass(frozen=True)
class Term:
    query: Query
    weight: float = 1.0

    def describe(self) -> str:
        words = self.query.words()
        return words if self.weight == 1 else f"{words} (weight {self.weight:g})"

    def as_dict(self) -> dict:
        return {**self.query.named(), "weight": self.weight}


@dataclass(frozen=True)
class ComposedQuery:
    """Results match the positive terms together (the weighted mean of their scores) and are pushed
    down where they match a negative term: "this photo, but at night", "beach -people"."""

    positive: tuple[Term, ...]
    negative: tuple[Term, ...] = ()

    @property
    def terms(self) -> tuple[Term, ...]:
        return self.positive + self.negative

    @property
    def from_stored_photo(self) -> bool:
        return any(term.query.from_stored_photo for term in self.terms)

    def plan(self, user) -> Plan:
        if not self.positive:
            raise SearchError("Say what to search for, not only what to leave out (“beach -people”).")
        for term in self.terms:
            if not 0 < term.weight <= MAX_WEIGHT:
                raise SearchError(f"A weight must be above 0 and at most {MAX_WEIGHT:g}.")
        plans = [term.query.plan(user) for term in self.positive]
        sources = {plan.source_image_id for plan in plans if plan.source_image_id is not None}
        if len(sources) > 1:
            raise SearchError("Combine words with at most one photo.")
        weights = np.array([term.weight for term in self.positive], dtype=np.float32)
        # Unnormalised on purpose: the inner product with it is the weighted mean of the terms' cosines.
        # A term with several rows ("more like this" by objects: the photo, then each object) gives as
        # many rows, each mixed with the other terms; a region scores its best.
        rows = [np.atleast_2d(plan.vector) for plan in plans]
        vector = sum(weight * row for weight, row in zip(weights, rows, strict=True)) / weights.sum()
        threshold = float(np.dot(weights, [term.query.threshold() for term in self.positive]) / weights.sum())
        margin = None
        if len(self.positive) > 1 and settings.COMPOSED_MARGIN is not None:
            # A mean of a text score and a picture's has no scale of its own: the right photo scores
            # 0.5 for one query and 0.7 for the next, so a fixed floor shows nothing or too much.
            # What stands out is what scores near the query's own best.
            margin = settings.COMPOSED_MARGIN
            if settings.MIN_COMPOSED_SIMILARITY is not None:
                threshold = settings.MIN_COMPOSED_SIMILARITY
        negatives = tuple(
            Negative(
                vector=np.atleast_2d(term.query.vector(user).vector)[0],
                weight=term.weight,
                threshold=term.query.exclude_threshold(),
            )
            for term in self.negative
        )
        about_whole_photo = any(term.query.about_whole_photo for term in self.positive)
        return Plan(
            vector=vector.astype(np.float32),
            source_image_id=next(iter(sources), None),
            threshold=threshold,
            handicap=0.0 if about_whole_photo else settings.WHOLE_IMAGE_HANDICAP,
            negatives=negatives,
            photo_vector=next((plan.photo_vector for plan in plans if plan.photo_vector is not None), None),
            all_of=tuple(plans) if self.all_of else (),
            margin=None if self.all_of else margin,
        )

    @property
    def all_of(self) -> bool:
        """Phrases joined by "+" ("a red circle + a blue square") ask for photos that hold each:
        no single region holds both, so a mean of their vectors matches neither. With a photo among
        the terms ("this photo, but red") the mean is the meaning, and stays."""
        return len(self.positive) > 1 and all(isinstance(term.query, TextQuery) for term in self.positive)

    def refine(self, ranked: list[Match], context: Refinement) -> list[Match]:
        return ranked

    def describe(self) -> str:
        found = " + ".join(term.describe() for term in self.positive)
        return " − ".join([found] + [term.describe() for term in self.negative])

    def as_dict(self) -> dict:
        return {
            "positive": [term.as_dict() for term in self.positive],
            "negative": [term.as_dict() for term in self.negative],
        }

    def as_params(self) -> dict[str, str]:
        """The search page's parameters: the phrases as one `q` ("sunset + boat -people"), the photo's
        own, and the photo's and the left-out phrases' weights where they are not 1."""
        params: dict[str, str] = {}
        phrases = []
        for term in self.positive:
            own = term.query.as_params()
            if "q" in own:
                phrases.append(own["q"])
            else:  # the photo
                params.update(own)
                if term.weight != 1:
                    params["image_weight"] = f"{term.weight:g}"
        left_out = [term.query.as_params().get("q", "") for term in self.negative]
        params["q"] = " ".join([" + ".join(phrases)] + [f"-{phrase}" for phrase in left_out if phrase]).strip()
        if self.negative and self.negative[0].weight != 1:
            params["exclude_weight"] = f"{self.negative[0].weight:g}"
        return {name: value for name, value in params.items() if value}

    def preview(self, user) -> dict:
        photos = [term.query for term in self.positive if term.query.kind != "text"]
        return photos[0].preview(user) if photos else {}


AnyQuery = Query | ComposedQuery


def _clip():
    try:
        return get_clip()
    except ModelUnavailable as error:
        raise SearchUnavailable(
            "Searching by text, photo or drawn box is unavailable: the server is missing its CLIP model. "
            "“More like this” and region searches still work on processed images.",
            fix=str(error),
        ) from error


def _visible_image(user, image_id: int) -> Image:
    image = images_visible_to(user).filter(pk=image_id).first()
    if image is None:
        raise SearchError("No such image.")
    return image


def repeated_objects() -> Q | None:
    """Object regions with a look-alike in their own photo (REPEATED_REGION_SIMILARITY): a cell among
    cells, a tile among tiles. Flat patches of unrelated photos embed almost alike (0.999), so "more
    like this" by objects lets them neither search nor be found: it is about the photo's things."""
    if settings.REPEATED_REGION_SIMILARITY is None:
        return None
    return Q(kind=Region.Kind.OBJECT, twin_similarity__gte=settings.REPEATED_REGION_SIMILARITY)


def _stored_vectors(regions: list[Region]) -> np.ndarray:
    """The regions' vectors as rows, if the configured model made them all."""
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
