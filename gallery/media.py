"""Serving image bytes only after a permission check, and thumbnails cached on disk."""
import io
import mimetypes
import os
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from PIL import Image as PILImage

from gallery.imaging import open_rgb
from gallery.models import Image
from gallery.services import media_path, thumbnail_path


def protected_file_response(path: Path, *, download_name: str | None = None) -> HttpResponse:
    """Send a file the caller has already checked the requester may see.

    With MEDIA_SENDFILE set, Django only answers with a header and the front web server streams the
    bytes from its internal location (which must not be reachable from outside).
    """
    if not path.is_file():
        raise Http404("The file is missing.")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    disposition = f"attachment; filename*=UTF-8''{quote(download_name, safe='')}" if download_name else "inline"
    mode = settings.MEDIA_SENDFILE
    if mode:
        response = HttpResponse(content_type=content_type)
        relative = path.resolve().relative_to(Path(settings.MEDIA_ROOT).resolve()).as_posix()
        if mode == "x-accel-redirect":
            response["X-Accel-Redirect"] = settings.MEDIA_INTERNAL_PREFIX.rstrip("/") + "/" + relative
        else:
            response["X-Sendfile"] = str(path.resolve())
        response["Content-Disposition"] = disposition
    else:
        response = FileResponse(path.open("rb"), content_type=content_type)
        response["Content-Disposition"] = disposition
    # Private bytes must not sit in shared caches.
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def original_response(image: Image, *, download: bool = False) -> HttpResponse:
    return protected_file_response(media_path(image.file), download_name=image.original_name if download else None)


def ensure_thumbnail(image: Image) -> Path:
    """The image's thumbnail (EXIF-aware JPEG), made on first request and cached on disk.

    Raises OSError when it could not be cached (a full or read-only disk): see thumbnail_response.
    """
    path = thumbnail_path(image)
    if path.is_file():
        return path
    rgb = _thumbnail(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        rgb.save(temporary, "JPEG", quality=85, optimize=True)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _thumbnail(image: Image) -> PILImage.Image:
    try:
        rgb = open_rgb(media_path(image.file))
    except FileNotFoundError:
        raise Http404("The file is missing.") from None
    rgb.thumbnail((settings.THUMBNAIL_SIZE, settings.THUMBNAIL_SIZE), PILImage.Resampling.LANCZOS)
    return rgb


def thumbnail_response(image: Image) -> HttpResponse:
    try:
        return protected_file_response(ensure_thumbnail(image))
    except OSError:
        # The disk is full or read-only: serve a thumbnail made in memory rather than none.
        return _jpeg_response(_thumbnail(image))


def _jpeg_response(picture: PILImage.Image) -> HttpResponse:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=85)
    response = HttpResponse(buffer.getvalue(), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


CROP_SIZE = 128  # longest side of a region preview


def region_crop_response(image: Image, box: list[int]) -> HttpResponse:
    """A small JPEG of one region, made on request (previews in the admin and region lists)."""
    try:
        rgb = open_rgb(media_path(image.file))
    except FileNotFoundError:
        raise Http404("The file is missing.") from None
    crop = rgb.crop(tuple(box))
    crop.thumbnail((CROP_SIZE, CROP_SIZE), PILImage.Resampling.LANCZOS)
    return _jpeg_response(crop)
