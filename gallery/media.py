"""Serving image bytes only after a permission check, and thumbnails kept in the media storage."""

import io
import logging
import mimetypes
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from PIL import Image as PILImage

from gallery import storage
from gallery.exif import CannotStripLocation, without_location
from gallery.formats import BROWSER_FORMATS
from gallery.models import Image
from gallery.services import preview_name, thumbnail_name, without_location_name

logger = logging.getLogger(__name__)


def protected_file_response(name: str, *, download_name: str | None = None) -> HttpResponse:
    """Send a stored file the caller has already checked the requester may see.

    With MEDIA_SENDFILE set (filesystem storage only), Django only answers with a header and the
    front web server streams the bytes from its internal location (which must not be reachable
    from outside).
    """
    if not storage.exists(name):
        raise Http404("The file is missing.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    source = storage.library_source(name)
    if source is not None:  # a library's photo, read in place
        return _private(FileResponse(open(source, "rb"), content_type=content_type), download_name=download_name)
    mode = settings.MEDIA_SENDFILE if storage.is_local() else ""
    if mode:
        response = HttpResponse(content_type=content_type)
        if mode == "x-accel-redirect":
            response["X-Accel-Redirect"] = settings.MEDIA_INTERNAL_PREFIX.rstrip("/") + "/" + name
        else:
            response["X-Sendfile"] = str(storage.local_path(name).resolve())
    else:
        response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    return _private(response, download_name=download_name)


def _private(response: HttpResponse, *, download_name: str | None = None) -> HttpResponse:
    response["Content-Disposition"] = (
        f"attachment; filename*=UTF-8''{quote(download_name, safe='')}" if download_name else "inline"
    )
    # Private bytes must not sit in shared caches.
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def larger_than_a_screen(image: Image) -> bool:
    return max(image.width, image.height) > settings.PREVIEW_SIZE


def zoom_shows_original(image: Image) -> bool:
    """Whether a zoomed viewer should load the original (`full`): it has more pixels than the
    screen-sized preview, and browsers can show it."""
    return larger_than_a_screen(image) and image.format in BROWSER_FORMATS


def original_response(
    image: Image, *, viewer, download: bool = False, display: bool = False, full: bool = False
) -> HttpResponse:
    """The original file; for anyone but its owner without where it was taken, unless the owner shares
    that (Image.share_location).

    With `display` (a page's <img>, not a download), a photo larger than a screen (PREVIEW_SIZE on its
    long side) or in a format browsers cannot show (HEIC, TIFF, camera RAW) is answered with a
    screen-sized JPEG of it instead: a page showed a 6000x4000 photo by loading all 3.6 MB of it.
    `full` (a zoomed viewer) asks for the original after all where browsers can show it.
    """
    if display and not download and (image.format not in BROWSER_FORMATS or (larger_than_a_screen(image) and not full)):
        return display_response(image)
    download_name = image.original_name if download else None
    if image.owner_id == viewer.pk or image.share_location or not image.carries_location:
        return protected_file_response(image.file, download_name=download_name)
    name = without_location_name(image)
    if storage.exists(name):
        return protected_file_response(name, download_name=download_name)
    try:
        with storage.opened(image.file) as stream:
            stripped = without_location(stream.read(), image.format)
    except FileNotFoundError:
        raise Http404("The file is missing.") from None
    except CannotStripLocation:
        # A RAW container whose metadata cannot be rewritten (CR3, RAF): others get the picture as
        # a full-size JPEG, which carries no metadata at all.
        jpeg_name = f"{Path(image.original_name).stem}.jpg" if download else None
        return _private(
            HttpResponse(_jpeg_bytes(storage.read_rgb(image.file), quality=95), content_type="image/jpeg"),
            download_name=jpeg_name,
        )
    if stripped is None:  # nothing to remove after all (an image stored before this was recorded)
        Image.objects.filter(pk=image.pk).update(carries_location=False)
        return protected_file_response(image.file, download_name=download_name)
    try:
        storage.write(name, stripped)
    except OSError:  # a full or read-only disk: send the copy made in memory
        content_type = mimetypes.guess_type(image.file)[0] or "application/octet-stream"
        return _private(HttpResponse(stripped, content_type=content_type), download_name=download_name)
    return protected_file_response(name, download_name=download_name)


def renditions_keep(image: Image, rgb: PILImage.Image) -> None:
    """Keep the thumbnail and (when pages need one) the screen-sized JPEG, made from `rgb`, the
    photo already decoded upright: the worker does this with the decode it needs anyway, so that
    pages never decode a photo again (a 12 MP HEIC takes a second each time). A disk that refuses
    is no error: pages then make them on request, as before."""
    wanted = []
    if max(image.width, image.height) > settings.PREVIEW_SIZE or image.format not in BROWSER_FORMATS:
        wanted.append((preview_name(image), settings.PREVIEW_SIZE, 90))
    wanted.append((thumbnail_name(image), settings.THUMBNAIL_SIZE, 85))
    source = rgb
    for name, side, quality in wanted:  # largest first: each is made from the one before
        picture = _shrunk(source, side)
        source = picture
        try:
            if not storage.exists(name):
                storage.write(name, _jpeg_bytes(picture, optimize=side <= settings.THUMBNAIL_SIZE, quality=quality))
        except OSError as error:
            logger.warning("Image %s: %s not kept (%s); pages make it on request.", image.pk, name, error)


def _shrunk(picture: PILImage.Image, side: int) -> PILImage.Image:
    """A copy of `picture` with its long side at most `side`."""
    copy = picture.copy()
    copy.thumbnail((side, side), PILImage.Resampling.LANCZOS)
    return copy


def display_response(image: Image) -> HttpResponse:
    """A JPEG of the photo at most PREVIEW_SIZE pixels on its long side, made on first request and
    kept (or made in memory on a full or read-only disk). It carries no metadata, so no location."""
    name = preview_name(image)
    try:
        if not storage.exists(name):
            storage.write(name, _jpeg_bytes(_resized(image, settings.PREVIEW_SIZE), quality=90))
        return protected_file_response(name)
    except OSError:
        return _jpeg_response(_resized(image, settings.PREVIEW_SIZE))


def ensure_thumbnail(image: Image) -> str:
    """The storage name of the image's thumbnail (EXIF-aware JPEG), made on first request and kept.

    Raises OSError when it could not be kept (a full or read-only disk): see thumbnail_response.
    """
    name = thumbnail_name(image)
    if not storage.exists(name):
        storage.write(name, _jpeg_bytes(_thumbnail(image), optimize=True))
    return name


def _thumbnail(image: Image) -> PILImage.Image:
    return _resized(image, settings.THUMBNAIL_SIZE)


def _resized(image: Image, side: int) -> PILImage.Image:
    try:
        rgb = storage.read_rgb(image.file, at_least=side)
    except FileNotFoundError:
        raise Http404("The file is missing.") from None
    rgb.thumbnail((side, side), PILImage.Resampling.LANCZOS)
    return rgb


def thumbnail_response(image: Image) -> HttpResponse:
    try:
        return protected_file_response(ensure_thumbnail(image))
    except OSError:
        # The disk is full or read-only: serve a thumbnail made in memory rather than none.
        return _jpeg_response(_thumbnail(image))


def _jpeg_bytes(picture: PILImage.Image, *, optimize: bool = False, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=quality, optimize=optimize)
    return buffer.getvalue()


def _jpeg_response(picture: PILImage.Image) -> HttpResponse:
    return _private(HttpResponse(_jpeg_bytes(picture), content_type="image/jpeg"))


CROP_SIZE = 128  # longest side of a region preview


def region_crop_response(image: Image, box: list[int]) -> HttpResponse:
    """A small JPEG of one region, made on request (previews in the admin and region lists)."""
    try:
        rgb = storage.read_rgb(image.file)
    except FileNotFoundError:
        raise Http404("The file is missing.") from None
    crop = rgb.crop(tuple(box))
    crop.thumbnail((CROP_SIZE, CROP_SIZE), PILImage.Resampling.LANCZOS)
    return _jpeg_response(crop)
