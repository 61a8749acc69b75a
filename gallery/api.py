"""The images API. Every queryset is scoped to request.user in the view, never by permissions alone."""

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gallery import media, places, selectors, services, tags
from gallery.models import Image
from imgsearch.api import ErrorSerializer
from imgsearch.parsers import JSONParser, MultiPartParser
from imgsearch.serializers import JsonTypedSerializer


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": tags.MAX_LABEL, "pattern": r"[\w'-]"})
class TagField(serializers.CharField):
    """A tag as typed: it keeps at least one letter, digit, hyphen or apostrophe once cleaned
    (gallery.tags.clean_label), which the schema states as its pattern."""

    def __init__(self, **kwargs):
        super().__init__(max_length=tags.MAX_LABEL, **kwargs)


class RegionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    box = serializers.ListField(child=serializers.IntegerField(), help_text="[x1, y1, x2, y2] in image pixels.")
    area_fraction = serializers.FloatField()
    score = serializers.FloatField()


class ImageOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    original_name = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    is_owner = serializers.SerializerMethodField()
    is_public = serializers.BooleanField()
    status = serializers.CharField(
        help_text="The first stage: pending, processing, ready (shown and searchable as a whole photo) or failed."
    )
    objects_status = serializers.CharField(
        help_text="The second stage, once ready: waiting, finding, found (object matches and region search) or "
        "failed (still searchable; error says why)."
    )
    progress = serializers.IntegerField(help_text="0-100 over both stages.")
    error = serializers.CharField()
    attempts = serializers.IntegerField(help_text="Claims in the current stage.")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    format = serializers.CharField()
    size_bytes = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    processed_at = serializers.DateTimeField(allow_null=True, help_text="When it became searchable (or failed).")
    objects_at = serializers.DateTimeField(allow_null=True, help_text="When finding its objects ended.")
    taken_at = serializers.DateTimeField(allow_null=True, help_text="From the photo's EXIF, when it has one.")
    archived = serializers.SerializerMethodField(help_text="Off the timelines, still found by search.")
    taken_at_local = serializers.SerializerMethodField(
        help_text="The same moment as the camera's clock read it, with its UTC offset "
        "(the server's TIME_ZONE when the photo records none): what to show a person."
    )
    camera = serializers.CharField()
    lens = serializers.CharField()
    exposure_seconds = serializers.FloatField(allow_null=True)
    f_number = serializers.FloatField(allow_null=True)
    iso = serializers.IntegerField(allow_null=True)
    focal_length_mm = serializers.FloatField(allow_null=True)
    location = serializers.SerializerMethodField(
        help_text="Where it was taken (EXIF GPS): for its owner, or anyone who may see it when share_location is on; else null."
    )
    place = serializers.SerializerMethodField(
        help_text="Where it was taken in words, named offline from its position (null without one, or far from "
        "any town); shown to the same people as location."
    )
    share_location = serializers.BooleanField(
        help_text="Others who may see it may see where it was taken (and download it with GPS)."
    )
    file_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    def get_archived(self, image: Image) -> bool:
        return image.archived_at is not None

    def get_taken_at_local(self, image: Image) -> str | None:
        return image.taken_local.isoformat() if image.taken_local else None

    def get_is_owner(self, image: Image) -> bool:
        return image.owner_id == self.context["request"].user.pk

    @extend_schema_field(
        inline_serializer(
            "Location", {"latitude": serializers.FloatField(), "longitude": serializers.FloatField()}, allow_null=True
        )
    )
    def get_location(self, image: Image) -> dict | None:
        if not image.location_visible_to(self.context["request"].user):
            return None
        return {"latitude": image.latitude, "longitude": image.longitude}

    @extend_schema_field(
        inline_serializer(
            "Place",
            {
                "name": serializers.CharField(help_text="“Paris, Île-de-France, France”: the place filter's form."),
                "city": serializers.CharField(),
                "region": serializers.CharField(),
                "country": serializers.CharField(),
            },
            allow_null=True,
        )
    )
    def get_place(self, image: Image) -> dict | None:
        place = image.place
        if place is None or not image.location_visible_to(self.context["request"].user):
            return None
        return {"name": str(place), "city": place.city, "region": place.region, "country": place.country}

    def get_file_url(self, image: Image) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:image_file", args=[image.pk]))

    def get_thumbnail_url(self, image: Image) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:image_thumbnail", args=[image.pk]))


class TagSerializer(serializers.Serializer):
    label = serializers.CharField()
    score = serializers.FloatField(
        allow_null=True, help_text="The model's zero-shot probability; null for a person's tag."
    )
    by_person = serializers.BooleanField()


class ImageDetailOutputSerializer(ImageOutputSerializer):
    regions = RegionOutputSerializer(many=True, source="regions.all")
    tags = serializers.SerializerMethodField(
        help_text="The model's tags (less those the owner removed) and the owner's."
    )

    @extend_schema_field(TagSerializer(many=True))
    def get_tags(self, image: Image) -> list[dict]:
        return TagSerializer(tags.image_chips(image), many=True).data


class ImageTagsApi(APIView):
    """Correct your photo's tags: `add` labels it shows, `remove` labels it does not (the model's tag
    of that label stays off, also when the photo is tagged again). Answers the tags as they are now."""

    class TagChangeInputSerializer(JsonTypedSerializer):
        add = serializers.ListField(child=TagField(), required=False, default=list)
        remove = serializers.ListField(child=TagField(), required=False, default=list)

    @extend_schema(request=TagChangeInputSerializer, responses=TagSerializer(many=True))
    def post(self, request: Request, pk: int) -> Response:
        image = get_object_or_404(selectors.images_owned_by(request.user), pk=pk)
        serializer = self.TagChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            for label in serializer.validated_data["add"]:
                tags.tag_add(image=image, label=label)
            for label in serializer.validated_data["remove"]:
                tags.tag_remove(image=image, label=label)
        except tags.TagRejected as error:
            raise ValidationError({"detail": str(error)}) from None
        return Response(TagSerializer(tags.image_chips(image), many=True).data)


class UploadOutcomeSerializer(serializers.Serializer):
    name = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"])
    message = serializers.CharField()
    image = ImageOutputSerializer(allow_null=True)


class ImageListCreateApi(ListAPIView):
    """GET: my images, newest first (filter with ?status=, ?visibility= and ?tag=). POST: upload one or many."""

    parser_classes = [MultiPartParser, FormParser]
    serializer_class = ImageOutputSerializer

    def get_queryset(self) -> QuerySet[Image]:
        queryset = selectors.images_owned_by(self.request.user).select_related("owner")
        # An empty ?status= or ?visibility= is refused like any other value not listed: leave the
        # parameter out for all.
        status_filter = self.request.query_params.get("status")
        if status_filter is not None:
            if status_filter not in Image.Status.values:
                raise ValidationError({"status": f"Unknown status; use one of {', '.join(Image.Status.values)}."})
            queryset = queryset.filter(status=status_filter)
        visibility = self.request.query_params.get("visibility")
        if visibility is not None:
            if visibility not in {"public", "private"}:
                raise ValidationError({"visibility": "Use public or private."})
            queryset = queryset.filter(is_public=visibility == "public")
        archived = self.request.query_params.get("archived")
        if archived is not None:
            if archived not in {"true", "false"}:
                raise ValidationError({"archived": "Use true or false."})
            queryset = queryset.filter(archived_at__isnull=archived == "false")
        if self.request.query_params.get("tag"):
            queryset = tags.images_tagged(queryset, self.request.query_params["tag"])
        if place := self.request.query_params.get("place"):
            if len(place) > places.NAME_CHARS or "\x00" in place:
                raise ValidationError({"place": f"A place's name: at most {places.NAME_CHARS} characters, no NUL."})
            queryset = places.images_at(queryset, place, self.request.user)
        return queryset

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Image.Status.values),
            OpenApiParameter("visibility", str, enum=["public", "private"]),
            OpenApiParameter("tag", str, description="Only photos with this tag."),
            OpenApiParameter(
                "place",
                str,
                description="Only photos taken there: a town, region or country, or parts of one separated by "
                "commas (“Paris, France”; a photo's place.name).",
            ),
            OpenApiParameter(
                "archived", str, enum=["true", "false"], description="Only archived photos, or none of them."
            ),
        ]
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "ImageUpload",
                {
                    "files": serializers.ListField(
                        child=serializers.FileField(),
                        min_length=1,
                        max_length=settings.MAX_FILES_PER_UPLOAD,
                        help_text="One or more photos (`file` works for one).",
                    )
                },
            )
        },
        responses={
            201: UploadOutcomeSerializer(many=True),
            # Every file rejected (one outcome each), or no usable `files` field at all (an error).
            400: OpenApiResponse(
                response={
                    "oneOf": [
                        {"type": "array", "items": {"$ref": "#/components/schemas/UploadOutcome"}},
                        {"$ref": "#/components/schemas/Error"},
                    ]
                },
                description="Every file was rejected (one outcome each), or no files were sent.",
            ),
            503: OpenApiResponse(description="The media folder cannot be written (read-only)."),
            507: OpenApiResponse(description="The server's storage is full; nothing was stored for this file."),
        },
        description="Upload one or many files in the `files` field (`file` works for one). Each file gets "
        "its own outcome: accepted (queued), duplicate (of one of your images) or rejected (with the reason). "
        "201 when at least one file was accepted or was a duplicate; 400 when every file was rejected.",
    )
    def post(self, request: Request) -> Response:
        try:
            uploads = request.FILES.getlist("files") + request.FILES.getlist("file")
        except TooManyFilesSent:
            raise ValidationError({"files": services.too_many_files_message()}) from None
        if not uploads:
            raise ValidationError({"files": "Send one or more image files in the 'files' field (multipart/form-data)."})
        try:
            outcomes = services.images_create(owner=request.user, uploads=uploads)
        except services.TooManyFiles as error:
            raise ValidationError({"files": str(error)}) from None
        except services.StorageUnavailable as error:
            return Response({"detail": str(error)}, status=error.status)
        data = UploadOutcomeSerializer(outcomes, many=True, context={"request": request}).data
        all_rejected = all(outcome.outcome == "rejected" for outcome in outcomes)
        return Response(data, status=status.HTTP_400_BAD_REQUEST if all_rejected else status.HTTP_201_CREATED)


class ImageChangeInputSerializer(JsonTypedSerializer):
    is_public = serializers.BooleanField(required=False)
    share_location = serializers.BooleanField(required=False)
    archived = serializers.BooleanField(
        required=False, help_text="Off the timelines, still found by search (the web's Archive)."
    )


class ImageDetailApi(APIView):
    """GET an image you may see (yours or public) with its regions; PATCH/DELETE your own."""

    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(responses=ImageDetailOutputSerializer)
    def get(self, request: Request, pk: int) -> Response:
        image = get_object_or_404(selectors.images_visible_to(request.user).select_related("owner"), pk=pk)
        return Response(ImageDetailOutputSerializer(image, context={"request": request}).data)

    @extend_schema(request=ImageChangeInputSerializer, responses=ImageDetailOutputSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        image = get_object_or_404(selectors.images_owned_by(request.user).select_related("owner"), pk=pk)
        serializer = ImageChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = serializer.validated_data
        if "is_public" in changes:
            services.image_set_visibility(image=image, is_public=changes["is_public"])
        if "share_location" in changes:
            services.image_set_location_sharing(image=image, share_location=changes["share_location"])
        if "archived" in changes:
            services.images_set_archived(queryset=Image.objects.filter(pk=image.pk), archived=changes["archived"])
            image.refresh_from_db()
        return Response(ImageDetailOutputSerializer(image, context={"request": request}).data)

    @extend_schema(
        responses={204: None},
        description="Moves your image to the trash (GET /api/trash/): restore it within TRASH_DAYS days, "
        "after which it is deleted for good.",
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.image_trash(image=get_object_or_404(selectors.images_owned_by(request.user), pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImageRetryApi(APIView):
    """Queue one of your images for processing again (for example after it failed)."""

    @extend_schema(request=None, responses={202: ImageOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        image = get_object_or_404(selectors.images_owned_by(request.user).select_related("owner"), pk=pk)
        image = services.image_reprocess(image=image)
        return Response(
            ImageOutputSerializer(image, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )


class ImageFileApi(APIView):
    """The original file of an image you may see (?download=1 for an attachment)."""

    @extend_schema(responses={(200, "image/*"): bytes})
    def get(self, request: Request, pk: int):
        image = get_object_or_404(selectors.images_visible_to(request.user), pk=pk)
        return media.original_response(image, viewer=request.user, download="download" in request.query_params)


class ImageThumbnailApi(APIView):
    """A JPEG thumbnail of an image you may see."""

    @extend_schema(responses={(200, "image/jpeg"): bytes})
    def get(self, request: Request, pk: int):
        return media.thumbnail_response(get_object_or_404(selectors.images_visible_to(request.user), pk=pk))


class TrashedImageOutputSerializer(ImageOutputSerializer):
    trashed_at = serializers.DateTimeField(help_text="When it was deleted; it goes for good TRASH_DAYS later.")


def _trashed(request: Request) -> QuerySet[Image]:
    return Image.all_objects.filter(owner=request.user, trashed_at__isnull=False).select_related("owner")


class TrashApi(APIView):
    """GET: your deleted photos, most recently deleted first, each restorable until TRASH_DAYS after it
    was deleted. DELETE: empty the trash now (for good)."""

    @extend_schema(responses=TrashedImageOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        trashed = _trashed(request).order_by("-trashed_at", "-id")
        return Response(TrashedImageOutputSerializer(trashed, many=True, context={"request": request}).data)

    @extend_schema(operation_id="trash_empty", responses={204: None})
    def delete(self, request: Request) -> Response:
        services.images_delete(queryset=_trashed(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrashedImageApi(APIView):
    """DELETE one of your photos in the trash for good, now."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.image_delete(image=get_object_or_404(_trashed(request), pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrashedImageRestoreApi(APIView):
    """Take one of your photos out of the trash: back where it was, and searchable again."""

    @extend_schema(
        request=None,
        responses={
            200: ImageOutputSerializer,
            409: OpenApiResponse(ErrorSerializer, description="A library's photo whose file left its folder."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        try:
            image = services.image_restore(image=get_object_or_404(_trashed(request), pk=pk))
        except services.CannotRestore as refused:
            return Response({"detail": str(refused)}, status=status.HTTP_409_CONFLICT)
        return Response(ImageOutputSerializer(image, context={"request": request}).data)
