"""POST /api/search/: the search service for scripts and apps."""
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from imgsearch.parsers import JSONParser, MultiPartParser
from search.query import (
    MATCH_KINDS,
    MAX_WEIGHT,
    SCOPES,
    Filters,
    SearchError,
    SearchUnavailable,
    as_dict,
    query_from,
    search,
)


class SearchResultSerializer(serializers.Serializer):
    image_id = serializers.IntegerField(source="image.pk")
    original_name = serializers.CharField(source="image.original_name")
    owner = serializers.CharField(source="image.owner.username")
    score = serializers.FloatField()
    kind = serializers.CharField(help_text="global (the whole image), object, tag (its owner tagged it with the query's "
                                           "words), or source (the uploaded picture is a piece of it: box says where)")
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


class SearchApi(APIView):
    """Search by text, by an uploaded image, by one of your visible images ("more like this"),
    by a region id, or by a box drawn on an image; or by words and one photo together. In text,
    "-people" leaves out photos of people and "+" separates phrases to match together
    ("sunset + boat -people"). Results are the images you may see."""

    parser_classes = [JSONParser, MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True,
                                     help_text="Words to search for; with a photo, words to combine with it. "
                                               "“-words” are left out, “+” starts another phrase to match.")
        image = serializers.ImageField(required=False, help_text="A query image (multipart only); never stored.")
        image_id = serializers.IntegerField(required=False, help_text="Alone: more like this image. With box: that region.")
        region_id = serializers.IntegerField(required=False, help_text="A region to search for.")
        box = serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4, required=False,
                                    help_text="[x1, y1, x2, y2] in the image's pixels; needs image_id.")
        image_weight = serializers.FloatField(default=1.0, min_value=0.0, max_value=MAX_WEIGHT,
                                              help_text="With text: the photo's weight against each phrase (above 0).")
        exclude_weight = serializers.FloatField(default=1.0, min_value=0.0, max_value=MAX_WEIGHT,
                                                help_text="How hard “-words” push down what matches them (above 0).")
        scope = serializers.ChoiceField(choices=SCOPES, default="all")
        kind = serializers.ChoiceField(choices=MATCH_KINDS, default="both")
        min_score = serializers.FloatField(required=False, min_value=-1.0, max_value=1.0)
        page = serializers.IntegerField(default=1, min_value=1)
        page_size = serializers.IntegerField(required=False, min_value=1)
        taken_from = serializers.DateField(required=False, help_text="Only photos taken on or after this day.")
        taken_to = serializers.DateField(required=False, help_text="Only photos taken on or before this day.")
        album_id = serializers.IntegerField(required=False, help_text="Only photos in this album (yours or shared with you).")
        camera = serializers.CharField(required=False, allow_blank=True, max_length=100, help_text="Only photos from this camera model.")
        favourites = serializers.BooleanField(default=False, help_text="Only your favourites.")
        tag = serializers.CharField(required=False, allow_blank=True, max_length=64, help_text="Only photos with this tag.")

    @extend_schema(request={"application/json": InputSerializer, "multipart/form-data": InputSerializer},
                   responses=SearchPageSerializer)
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            query = query_from(text=data.get("text"), image=data["image"].read() if data.get("image") else None,
                               image_id=data.get("image_id"), region_id=data.get("region_id"), box=data.get("box"),
                               image_weight=data["image_weight"], exclude_weight=data["exclude_weight"])
            page = search(user=request.user, query=query, scope=data["scope"], kind=data["kind"],
                          min_score=data.get("min_score"), page=data["page"], page_size=data.get("page_size"),
                          filters=Filters(taken_from=data.get("taken_from"), taken_to=data.get("taken_to"),
                                          album_id=data.get("album_id"), camera=data.get("camera", ""),
                                          favourites=data["favourites"], tag=data.get("tag", "")))
        except SearchUnavailable as error:
            body = {"detail": str(error)}
            if request.user.is_staff and error.fix:
                body["fix"] = error.fix  # server paths and commands: staff only
            return Response(body, status=503)
        except SearchError as error:
            raise ValidationError(str(error)) from None
        results = SearchResultSerializer(page.results, many=True, context={"request": request}).data
        return Response({"query": as_dict(query), "page": page.page, "page_size": page.page_size, "has_next": page.has_next, "results": results})


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
    keep = serializers.IntegerField(source="keep.pk", help_text="The photo with the most pixels (then bytes): the one to keep.")
    images = DuplicateImageSerializer(many=True, help_text="The group, the one to keep first.")


class DuplicatesApi(APIView):
    """Your near-duplicate photos (re-encodes, rescales, crops of one photo), in groups: delete the
    rest of a group with DELETE /api/images/{id}/. Only your own photos are compared."""

    @extend_schema(responses=DuplicateGroupSerializer(many=True))
    def get(self, request: Request) -> Response:
        from search.duplicates import duplicate_groups

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
    new_matches = serializers.IntegerField(allow_null=True, help_text="New among its best 50 matches; null when it cannot run.")
    problem = serializers.CharField(help_text="Why it cannot run now, if it cannot.")


class RecentSearchesApi(APIView):
    """Your recent searches on the search page, newest first; DELETE clears them."""

    @extend_schema(responses=RecordSerializer(many=True))
    def get(self, request: Request) -> Response:
        from search.models import RecentSearch

        records = RecentSearch.objects.filter(owner=request.user)
        return Response(RecordSerializer(records, many=True, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        from search import history

        history.recent_clear(user=request.user)
        return Response(status=204)


class SavedSearchesApi(APIView):
    """Your saved searches, each with how many of its best matches are new since it was last opened
    (GET /api/searches/saved/{id}/ opens it). POST saves a search: a name and the fields of
    POST /api/search/ (an uploaded image is kept as its vector, never as a file)."""

    parser_classes = [JSONParser, MultiPartParser, FormParser]

    class SaveSearchInputSerializer(SearchApi.InputSerializer):
        name = serializers.CharField(max_length=100)
        min_score = page = page_size = None  # a saved search keeps what to find, not how much to show

    @extend_schema(responses=SavedSearchListItemSerializer(many=True))
    def get(self, request: Request) -> Response:
        from search import history

        listed = []
        for saved, new, problem in history.saved_with_new_counts(request.user):
            saved.new_matches, saved.problem = new, problem
            listed.append(saved)
        return Response(SavedSearchListItemSerializer(listed, many=True, context={"request": request}).data)

    @extend_schema(request={"application/json": SaveSearchInputSerializer, "multipart/form-data": SaveSearchInputSerializer},
                   responses={201: SavedSearchSerializer})
    def post(self, request: Request) -> Response:
        from search import history
        from search.vision.identity import current_model
        from search.query import ImageQuery, query_vector

        serializer = self.SaveSearchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            vector = query_vector(user=request.user, query=ImageQuery(data["image"].read()))[0] if data.get("image") else None
            saved = history.saved_from_api(user=request.user, name=data["name"], params=page_params(data),
                                           photo_vector=vector, model=current_model()[0])
        except SearchUnavailable as error:
            return Response({"detail": str(error)}, status=503)
        except SearchError as error:
            raise ValidationError(str(error)) from None
        return Response(SavedSearchSerializer(saved, context={"request": request}).data, status=201)


def page_params(data: dict) -> dict[str, str]:
    """POST /api/search/'s fields as the search page's parameters (what a saved search keeps)."""
    from search.models import kept

    box = data.get("box")
    params = {"q": data.get("text"), "region": data.get("region_id"), "scope": data.get("scope"), "kind": data.get("kind"),
              "similar" if box is None else "box_image": data.get("image_id"),
              "box": ",".join(f"{v:g}" for v in box) if box else None,
              "image_weight": data.get("image_weight") if data.get("image_weight") != 1.0 else None,
              "exclude_weight": data.get("exclude_weight") if data.get("exclude_weight") != 1.0 else None,
              "taken_from": data.get("taken_from"), "taken_to": data.get("taken_to"), "album": data.get("album_id"),
              "camera": data.get("camera"), "favourites": "on" if data.get("favourites") else None, "tag": data.get("tag")}
    return kept(params)


class SavedSearchApi(APIView):
    """Open a saved search: its results now, which of them are new since it was last opened (opening
    page 1 marks them seen); DELETE removes it."""

    @extend_schema(parameters=[OpenApiParameter("page", int, description="Page of results (default 1).")],
                   responses=inline_serializer("SavedSearchResults", {
                       "saved": SavedSearchSerializer(), "new": serializers.ListField(child=serializers.IntegerField()),
                       "query": QuerySerializer(), "page": serializers.IntegerField(), "page_size": serializers.IntegerField(),
                       "has_next": serializers.BooleanField(), "results": SearchResultSerializer(many=True)}))
    def get(self, request: Request, pk: int) -> Response:
        from search import history

        saved = self._saved(request, pk)
        try:
            page_number = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            raise ValidationError("page must be a number.") from None
        try:
            query, page = history.run_record(user=request.user, record=saved, page=page_number)
        except SearchUnavailable as error:
            return Response({"detail": str(error)}, status=503)
        except SearchError as error:
            raise ValidationError(str(error)) from None
        new = sorted(history.new_image_ids(page, saved.last_viewed_at))
        if page.page == 1:
            history.saved_viewed(saved)
        return Response({"saved": SavedSearchSerializer(saved, context={"request": request}).data, "new": new,
                         "query": as_dict(query), "page": page.page, "page_size": page.page_size, "has_next": page.has_next,
                         "results": SearchResultSerializer(page.results, many=True, context={"request": request}).data})

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        self._saved(request, pk).delete()
        return Response(status=204)

    @staticmethod
    def _saved(request: Request, pk: int):
        from search.models import SavedSearch

        saved = SavedSearch.objects.filter(owner=request.user, pk=pk).first()
        if saved is None:
            raise NotFound("No such saved search.")
        return saved
