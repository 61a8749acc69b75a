"""POST /api/search/: the search service for scripts and apps."""

from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gallery import places
from imgsearch.api import ErrorSerializer
from imgsearch.params import param_int
from imgsearch.parsers import JSONParser, MultiPartParser
from imgsearch.serializers import JsonTypedSerializer
from search import history
from search.duplicates import duplicate_groups
from search.errors import SearchError, SearchUnavailable
from search.models import RecentSearch, SavedSearch
from search.queries import MAX_WEIGHT, ImageQuery
from search.query import MATCH_KINDS, MAX_PAGE, SCOPES, Filters
from search.request import SearchRequest, query_from


class SearchResultSerializer(serializers.Serializer):
    image_id = serializers.IntegerField(source="image.pk")
    original_name = serializers.CharField(source="image.original_name")
    owner = serializers.CharField(source="image.owner.username")
    score = serializers.FloatField()
    kind = serializers.CharField(
        help_text="global (the whole image), object, tag (its owner tagged it with the query's "
        "words), place (taken at the place the words name), or source (the uploaded picture is a piece "
        "of it: box says where)"
    )
    box = serializers.ListField(child=serializers.IntegerField(), help_text="[x1, y1, x2, y2] of the match.")
    region_id = serializers.IntegerField()
    image_width = serializers.IntegerField(source="image.width")
    image_height = serializers.IntegerField(source="image.height")
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    def get_image_url(self, result) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:image_file", args=[result.image.pk]))

    def get_thumbnail_url(self, result) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:image_thumbnail", args=[result.image.pk]))


QUERY_TERM_KINDS = ("text", "image", "similar", "region", "box")


class QueryTermSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=QUERY_TERM_KINDS)
    weight = serializers.FloatField()
    text = serializers.CharField(required=False)
    image_id = serializers.IntegerField(required=False)
    region_id = serializers.IntegerField(required=False)
    box = serializers.ListField(child=serializers.FloatField(), required=False)


class QuerySerializer(serializers.Serializer):
    positive = QueryTermSerializer(many=True, help_text="What results match: the weighted mean of these terms.")
    negative = QueryTermSerializer(many=True, help_text="What results are pushed down for matching.")


class SearchPageSerializer(serializers.Serializer):
    query = QuerySerializer(help_text="The query as it was understood.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    has_next = serializers.BooleanField()
    results = SearchResultSerializer(many=True)


LIBRARY_PHOTO_FIELDS = ("image_id", "region_id", "box")


def state_search_rules(result: dict, **_) -> dict:
    """drf-spectacular postprocessing hook: the rules of a search body that no single field states,
    in the schema where JSON Schema can say them (search.request.query_from enforces them).

    A JSON body searches with text, a photo of the library (image_id, region_id, or image_id with a
    box), or both: something to search for, at most one photo, a box only with its image_id. A
    multipart body carries an uploaded photo (image), with text if wanted. (That the text must hold a
    word to find, not only "-words" to leave out, is said in words.)"""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if not name.startswith(("SearchInput", "SaveSearchInput")):
            continue
        properties = component.get("properties", {})
        if name.endswith("MultipartRequest"):
            for field in LIBRARY_PHOTO_FIELDS:
                properties.pop(field, None)
            component["required"] = sorted({*component.get("required", []), "image"})
            component["description"] = (
                "An uploaded photo to search with (image), and words to combine with it if wanted."
            )
            continue
        component["allOf"] = [
            {"anyOf": [{"required": ["text"]}, {"required": ["image_id"]}, {"required": ["region_id"]}]},
            {"not": {"required": ["image_id", "region_id"]}},
            {"anyOf": [{"not": {"required": ["box"]}}, {"required": ["image_id"]}]},
        ]
        component["description"] = (
            "Text (words to find; “-words” to leave out), a photo of the library (image_id for more like "
            "it, with box for a region of it, or region_id), or text and one photo together. To search "
            "with a photo of your own, send multipart with image."
        )
    return result


class SearchApi(APIView):
    """Search by text, by an uploaded image, by one of your visible images ("more like this"),
    by a region id, or by a box drawn on an image; or by words and one photo together. In text,
    "-people" leaves out photos of people and "+" separates phrases to match together
    ("sunset + boat -people"). Results are the images you may see."""

    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema_serializer(component_name="SearchInput")
    class InputSerializer(JsonTypedSerializer):
        text = serializers.CharField(
            required=False,
            allow_blank=True,
            trim_whitespace=True,
            help_text="Words to search for; with a photo, words to combine with it. "
            "“-words” are left out, “+” starts another phrase to match.",
        )
        image = serializers.ImageField(required=False, help_text="A query image (multipart only); never stored.")
        image_id = serializers.IntegerField(
            required=False, help_text="Alone: more like this image. With box: that region."
        )
        region_id = serializers.IntegerField(required=False, help_text="A region to search for.")
        box = serializers.ListField(
            child=serializers.FloatField(),
            min_length=4,
            max_length=4,
            required=False,
            help_text="[x1, y1, x2, y2] in the image's pixels; needs image_id.",
        )
        image_weight = serializers.FloatField(
            default=1.0,
            min_value=0.0,
            max_value=MAX_WEIGHT,
            help_text="With text: the photo's weight against each phrase (above 0).",
        )
        exclude_weight = serializers.FloatField(
            default=1.0,
            min_value=0.0,
            max_value=MAX_WEIGHT,
            help_text="How hard “-words” push down what matches them (above 0).",
        )
        scope = serializers.ChoiceField(choices=SCOPES, default="all")
        kind = serializers.ChoiceField(choices=MATCH_KINDS, default="both")
        min_score = serializers.FloatField(required=False, min_value=-1.0, max_value=1.0)
        page = serializers.IntegerField(default=1, min_value=1, max_value=MAX_PAGE)
        page_size = serializers.IntegerField(required=False, min_value=1)
        taken_from = serializers.DateField(required=False, help_text="Only photos taken on or after this day.")
        taken_to = serializers.DateField(required=False, help_text="Only photos taken on or before this day.")
        album_id = serializers.IntegerField(
            required=False, help_text="Only photos in this album (yours or shared with you)."
        )
        camera = serializers.CharField(
            required=False, allow_blank=True, max_length=100, help_text="Only photos from this camera model."
        )
        favourites = serializers.BooleanField(default=False, help_text="Only your favourites.")
        tag = serializers.CharField(
            required=False, allow_blank=True, max_length=64, help_text="Only photos with this tag."
        )
        place = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=places.NAME_CHARS,
            help_text="Only photos taken there: a town, region or country (“Paris”), or several parts of one "
            "separated by commas (“Paris, France”). Others' photos count only where they share the location.",
        )

        def search_request(self) -> SearchRequest:
            """The request the (valid) payload describes. Raises SearchError."""
            data = self.validated_data
            box = data.get("box")
            upload = data.get("image")
            query = query_from(
                text=data.get("text"),
                image=ImageQuery(data=upload.read(), name=upload.name) if upload else None,
                image_id=None if box else data.get("image_id"),
                box_image_id=data.get("image_id") if box else None,
                box=box,
                region_id=data.get("region_id"),
                image_weight=data["image_weight"],
                exclude_weight=data["exclude_weight"],
            )
            filters = Filters(
                taken_from=data.get("taken_from"),
                taken_to=data.get("taken_to"),
                album_id=data.get("album_id"),
                camera=data.get("camera", ""),
                favourites=data["favourites"],
                tag=data.get("tag", ""),
                place=data.get("place", ""),
            )
            return SearchRequest(query=query, scope=data["scope"], kind=data["kind"], filters=filters)

    @extend_schema(
        request={"application/json": InputSerializer, "multipart/form-data": InputSerializer},
        responses=SearchPageSerializer,
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            search_request = serializer.search_request()
            page = search_request.run(
                user=request.user, min_score=data.get("min_score"), page=data["page"], page_size=data.get("page_size")
            )
        except SearchUnavailable as error:
            return unavailable(request, error)
        except SearchError as error:
            raise ValidationError(str(error)) from None
        return Response(page_body(request, search_request, page))


def unavailable(request: Request, error: SearchUnavailable) -> Response:
    body = {"detail": str(error)}
    if request.user.is_staff and error.fix:
        body["fix"] = error.fix  # server paths and commands: staff only
    return Response(body, status=503)


def page_body(request: Request, search_request: SearchRequest, page) -> dict:
    results = SearchResultSerializer(page.results, many=True, context={"request": request}).data
    return {
        "query": search_request.query.as_dict(),
        "page": page.page,
        "page_size": page.page_size,
        "has_next": page.has_next,
        "results": results,
    }


class DuplicateImageSerializer(serializers.Serializer):
    image_id = serializers.IntegerField(source="pk")
    original_name = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    format = serializers.CharField()
    size_bytes = serializers.IntegerField()
    taken_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    thumbnail_url = serializers.SerializerMethodField()

    def get_thumbnail_url(self, image) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:image_thumbnail", args=[image.pk]))


class DuplicateGroupSerializer(serializers.Serializer):
    keep = serializers.IntegerField(
        source="keep.pk", help_text="The photo with the most pixels (then bytes): the one to keep."
    )
    images = DuplicateImageSerializer(many=True, help_text="The group, the one to keep first.")


class DuplicatesApi(APIView):
    """Your near-duplicate photos (re-encodes, rescales, crops of one photo), in groups: delete the
    rest of a group with DELETE /api/images/{id}/. Only your own photos are compared."""

    @extend_schema(responses=DuplicateGroupSerializer(many=True))
    def get(self, request: Request) -> Response:
        groups = duplicate_groups(request.user)
        return Response(DuplicateGroupSerializer(groups, many=True, context={"request": request}).data)


class RecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    description = serializers.CharField(help_text="What was searched for, in words.")
    params = serializers.DictField(child=serializers.CharField(), help_text="The search page's parameters.")
    by_photo = serializers.BooleanField(help_text="A search by an uploaded photo (its vector is kept, not the photo).")
    created_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField(help_text="The search page that runs it.")

    def get_url(self, record) -> str:
        return self.context["request"].build_absolute_uri(record.get_absolute_url())


class SavedSearchSerializer(RecordSerializer):
    name = serializers.CharField()
    last_viewed_at = serializers.DateTimeField(help_text="Matches that arrived after this are new.")


class SavedSearchListItemSerializer(SavedSearchSerializer):
    new_matches = serializers.IntegerField(
        allow_null=True, help_text="New among its best 50 matches; null when it cannot run."
    )
    problem = serializers.CharField(help_text="Why it cannot run now, if it cannot.")


class RecentSearchesApi(APIView):
    """Your recent searches on the search page, newest first; DELETE clears them."""

    @extend_schema(responses=RecordSerializer(many=True))
    def get(self, request: Request) -> Response:
        records = RecentSearch.objects.filter(owner=request.user)
        return Response(RecordSerializer(records, many=True, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        history.recent_clear(user=request.user)
        return Response(status=204)


class SavedSearchesApi(APIView):
    """Your saved searches, each with how many of its best matches are new since it was last opened
    (GET /api/searches/saved/{id}/ opens it). POST saves a search: a name and the fields of
    POST /api/search/ (an uploaded image is kept as its vector, never as a file)."""

    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema_serializer(component_name="SaveSearchInput")
    class SaveSearchInputSerializer(SearchApi.InputSerializer):
        name = serializers.CharField(max_length=100)
        min_score = page = page_size = None  # a saved search keeps what to find, not how much to show

    @extend_schema(responses=SavedSearchListItemSerializer(many=True))
    def get(self, request: Request) -> Response:
        listed = []
        for saved, new, problem in history.saved_with_new_counts(request.user):
            saved.new_matches, saved.problem = new, problem
            listed.append(saved)
        return Response(SavedSearchListItemSerializer(listed, many=True, context={"request": request}).data)

    @extend_schema(
        request={"application/json": SaveSearchInputSerializer, "multipart/form-data": SaveSearchInputSerializer},
        responses={201: SavedSearchSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = self.SaveSearchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            saved = history.saved_from_api(
                user=request.user, name=serializer.validated_data["name"], request=serializer.search_request()
            )
        except SearchUnavailable as error:
            return unavailable(request, error)
        except SearchError as error:
            raise ValidationError(str(error)) from None
        return Response(SavedSearchSerializer(saved, context={"request": request}).data, status=201)


class SavedSearchApi(APIView):
    """Open a saved search: its results now, which of them are new since it was last opened (opening
    page 1 marks them seen); DELETE removes it."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "page",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                description="Page of results (default 1).",
            )
        ],
        responses={
            200: inline_serializer(
                "SavedSearchResults",
                {
                    "saved": SavedSearchSerializer(),
                    "new": serializers.ListField(child=serializers.IntegerField()),
                    "query": QuerySerializer(),
                    "page": serializers.IntegerField(),
                    "page_size": serializers.IntegerField(),
                    "has_next": serializers.BooleanField(),
                    "results": SearchResultSerializer(many=True),
                },
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description="It cannot run now (its photo or album is gone): `detail` says why. "
                "Delete it, or save the search again.",
            ),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        saved = self._saved(request, pk)
        page_number = param_int(request.query_params.get("page"), name="page", minimum=1, maximum=MAX_PAGE) or 1
        try:
            search_request, page = history.run_record(user=request.user, record=saved, page=page_number)
        except SearchUnavailable as error:
            return unavailable(request, error)
        except SearchError as error:
            # Nothing wrong with the request: the saved search itself no longer runs.
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        new = sorted(history.new_image_ids(page, saved.last_viewed_at))
        if page.page == 1:
            history.saved_viewed(saved)
        return Response(
            {
                "saved": SavedSearchSerializer(saved, context={"request": request}).data,
                "new": new,
                **page_body(request, search_request, page),
            }
        )

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        self._saved(request, pk).delete()
        return Response(status=204)

    @staticmethod
    def _saved(request: Request, pk: int) -> SavedSearch:
        saved = SavedSearch.objects.filter(owner=request.user, pk=pk).first()
        if saved is None:
            raise NotFound("No such saved search.")
        return saved
