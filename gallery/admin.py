"""Curating images. Changes go through the services; the index learns of them from the change feed
(database triggers), so even Django's own bulk delete could not leave vectors behind."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from gallery import media, services
from gallery.models import Album, Image, Library, Region, ShareLink, Tag


class RegionInline(admin.TabularInline):
    model = Region
    extra = 0
    can_delete = False
    fields = ("preview", "kind", "box_display", "area_fraction", "score", "embedding_model")
    readonly_fields = fields
    ordering = ("kind", "-score")

    @admin.display(description="Crop")
    def preview(self, region: Region) -> str:
        return format_html(
            '<img src="{}" alt="region {}" style="max-height:64px" loading="lazy" decoding="async">',
            reverse("admin:gallery_region_crop", args=[region.pk]),
            region.pk,
        )

    @admin.display(description="Box [x1, y1, x2, y2]")
    def box_display(self, region: Region) -> str:
        return str(region.box)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class TagInline(admin.TabularInline):
    """The model's tags (read-only: `manage.py retag` remakes them) and people's decisions, which
    staff may correct like the owner would."""

    model = Tag
    extra = 0
    fields = ("label", "source", "score", "removed", "region")
    readonly_fields = ("score", "region")
    ordering = ("source", "label")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = (
        "thumbnail",
        "original_name",
        "owner",
        "status",
        "objects_status",
        "is_public",
        "region_count",
        "created_at",
    )
    # Photos in their owners' trash too (Image.all_objects): "Trashed at: Has value" lists them.
    list_filter = (
        "status",
        "objects_status",
        "is_public",
        "format",
        "created_at",
        ("trashed_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("original_name", "owner__username", "sha256")
    list_select_related = ("owner",)
    readonly_fields = (
        "thumbnail_large",
        "owner",
        "file",
        "original_name",
        "sha256",
        "format",
        "width",
        "height",
        "size_bytes",
        "status",
        "objects_status",
        "progress",
        "error",
        "attempts",
        "queued_at",
        "processing_started_at",
        "claimed_by",
        "heartbeat_at",
        "processed_at",
        "objects_at",
        "created_at",
        "updated_at",
        "tasks_link",
    )
    fields = ("is_public",) + readonly_fields
    inlines = [TagInline, RegionInline]
    # Django's own "Delete selected" asks for confirmation first, then calls delete_queryset below.
    actions = ["reprocess", "make_public", "make_private"]

    def get_queryset(self, request):
        return Image.all_objects.annotate(region_count=Count("regions"))

    def get_urls(self):
        # Curators see every image, private ones included, so the admin serves its previews itself
        # (behind admin login and the view permission); the gallery's media URLs stay owner-scoped.
        media_urls = [
            path(
                "<int:pk>/thumbnail/", self.admin_site.admin_view(self.thumbnail_view), name="gallery_image_thumbnail"
            ),
            path("regions/<int:pk>/crop/", self.admin_site.admin_view(self.crop_view), name="gallery_region_crop"),
        ]
        return media_urls + super().get_urls()

    def thumbnail_view(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return media.thumbnail_response(get_object_or_404(Image, pk=pk))

    def crop_view(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        region = get_object_or_404(Region.objects.select_related("image"), pk=pk)
        return media.region_crop_response(region.image, region.box)

    def has_add_permission(self, request) -> bool:
        return False  # uploads go through validation: the web form, the API or ingest_folder

    @admin.display(description="Regions", ordering="region_count")
    def region_count(self, image: Image) -> int:
        return image.region_count

    @admin.display(description="")
    def thumbnail(self, image: Image) -> str:
        return format_html(
            # Lazy: a page of 100 photos asked for every thumbnail at once (6.3 s for 91).
            '<img src="{}" alt="" style="height:48px" loading="lazy" decoding="async">',
            reverse("admin:gallery_image_thumbnail", args=[image.pk]),
        )

    @admin.display(description="Preview")
    def thumbnail_large(self, image: Image) -> str:
        return format_html(
            '<img src="{}" alt="" style="max-height:240px">', reverse("admin:gallery_image_thumbnail", args=[image.pk])
        )

    @admin.display(description="Background tasks")
    def tasks_link(self, image: Image) -> str:
        query = f"?q=image-{image.pk}-"  # both stages: image-N-whole, image-N-objects
        return format_html(
            '<a href="{}">finished</a> · <a href="{}">crashed</a>',
            reverse("admin:django_q_success_changelist") + query,
            reverse("admin:django_q_failure_changelist") + query,
        )

    @admin.action(description="Reprocess selected images")
    def reprocess(self, request, queryset):
        count = services.images_reprocess(queryset=queryset)
        self.message_user(request, f"Queued {count} image(s) for processing.", messages.SUCCESS)

    @admin.action(description="Make selected images public")
    def make_public(self, request, queryset):
        for image in queryset:
            services.image_set_visibility(image=image, is_public=True)

    @admin.action(description="Make selected images private")
    def make_private(self, request, queryset):
        for image in queryset:
            services.image_set_visibility(image=image, is_public=False)

    def delete_model(self, request, obj: Image) -> None:
        services.image_delete(image=obj)

    def delete_queryset(self, request, queryset) -> None:
        services.images_delete(queryset=queryset)


class ShareLinkInline(admin.TabularInline):
    model = ShareLink
    extra = 0
    fields = ("token_start", "created_at", "expires_at", "revoked_at")
    readonly_fields = ("token_start", "created_at")

    @admin.display(description="Link")
    def token_start(self, link: ShareLink) -> str:
        return f"{link.token[:6]}…"  # enough to tell links apart; the whole token stays with its owner

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Album)
class AlbumAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "photo_count", "updated_at")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner",)
    fields = ("name", "owner", "cover", "shared_with", "created_at", "updated_at")
    readonly_fields = ("owner", "created_at", "updated_at")
    raw_id_fields = ("cover",)
    filter_horizontal = ("shared_with",)
    inlines = [ShareLinkInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(photo_count=Count("items"))

    @admin.display(description="Photos", ordering="photo_count")
    def photo_count(self, album: Album) -> int:
        return album.photo_count


@admin.register(Library)
class LibraryAdmin(admin.ModelAdmin):
    """Folders read in place for a person: add one here or with `manage.py library add`; the worker
    rescans each every `rescan_minutes` (or `manage.py library scan`)."""

    list_display = ("path", "owner", "rescan_minutes", "scanned_at", "last_scan")
    readonly_fields = ("scanned_at", "last_scan")
    actions = ["scan_now"]

    @admin.action(description="Scan the selected libraries now")
    def scan_now(self, request, queryset):
        from gallery.libraries import library_scan

        for library in queryset:
            try:
                self.message_user(request, f"{library}: {library_scan(library)}.")
            except FileNotFoundError as error:
                self.message_user(request, str(error), level=messages.ERROR)
