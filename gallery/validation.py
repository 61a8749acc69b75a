"""Deciding whether uploaded bytes are an image we accept.

The decision is made by decoding with Pillow, never from the file name or the content type the
client claims. Each rejection is an `UploadRejected` whose message is shown to the person as is.
"""

import hashlib
import warnings
from dataclasses import asdict, dataclass, replace

from django.conf import settings
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from gallery.exif import PhotoMetadata, boxed_xmp, read_metadata
from gallery.formats import ACCEPTED_FORMATS, ACCEPTED_HUMAN, RawUnreadable, open_image

# Markup that browsers render and Pillow never decodes; named explicitly for a clearer message.
_MARKUP_PREFIXES = (b"<?xml", b"<svg", b"<!doctype", b"<html", b"<head", b"<body", b"<script")


class UploadRejected(ValueError):
    """The upload is not an image we accept; str(error) is the sentence to show the person."""


@dataclass(frozen=True)
class ValidatedImage:
    data: bytes
    sha256: str
    format: str
    extension: str
    width: int  # after EXIF orientation
    height: int
    metadata: PhotoMetadata = PhotoMetadata()

    def image_fields(self) -> dict:
        """What an Image row keeps of the file: its hash, format, size in pixels and metadata."""
        return {
            "sha256": self.sha256,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            **asdict(self.metadata),
        }


def display_name(name: str | None) -> str:
    """The uploader's file name, reduced to something safe to show: no directories, bounded length."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")
    if not base:
        return "upload"
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else base[:200]
    return base


def _looks_like_markup(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(_MARKUP_PREFIXES)


def validate_image_bytes(data: bytes, *, decode: bool = True) -> ValidatedImage:
    """Decode `data` fully and return what we store about it, or raise UploadRejected.

    `decode=False` reads the headers only (format, size, metadata): for a library's files, which the
    first stage decodes anyway, so that a scan does not decode each twice (a second a HEIC); a file
    that then fails to decode fails there, with a sentence naming its place in the folder."""
    if len(data) == 0:
        raise UploadRejected("The file is empty (0 bytes).")
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise UploadRejected(too_large_message(len(data)))
    if _looks_like_markup(data[:512]):
        raise UploadRejected(f"SVG and HTML files are not accepted; upload a {ACCEPTED_HUMAN} image.")
    image = _opened(data)
    with image:
        if image.format not in ACCEPTED_FORMATS:
            raise UploadRejected(f"{image.format} images are not accepted; upload a {ACCEPTED_HUMAN} image.")
        width, height = image.size
        if width * height > settings.MAX_IMAGE_PIXELS:
            raise UploadRejected(_too_many_pixels_message((width, height)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
                image.seek(0)
                if decode:
                    image.load()
        except PILImage.DecompressionBombError:
            raise UploadRejected(_too_many_pixels_message((width, height))) from None
        except Exception as error:
            raise UploadRejected(f"The image is truncated or corrupt and cannot be decoded ({_said(error)}).") from None
        orientation = image.getexif().get(0x0112, 1)
        if orientation in {5, 6, 7, 8}:  # rotated by 90 degrees: the stored box space swaps axes
            width, height = height, width
        image_format = image.format
        metadata = read_metadata(image)
        if boxed_xmp(data) and not metadata.carries_location:
            metadata = replace(metadata, carries_location=True)
    return ValidatedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=image_format,
        extension=ACCEPTED_FORMATS[image_format],
        width=width,
        height=height,
        metadata=metadata,
    )


def _opened(data: bytes) -> PILImage.Image:
    """The file opened (gallery.formats.open_image), or UploadRejected saying why it cannot be."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns at its default cap; ours in the caller is the one that decides.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            return open_image(data)
    except RawUnreadable as error:
        raise UploadRejected(f"The camera RAW file is corrupt or of a kind we cannot read ({_said(error)}).") from None
    except UnidentifiedImageError:
        raise UploadRejected(f"This file is not an image we can read; upload a {ACCEPTED_HUMAN} image.") from None
    except PILImage.DecompressionBombError:
        raise UploadRejected(_too_many_pixels_message(None)) from None
    except Exception as error:  # Pillow raises many types for malformed headers.
        raise UploadRejected(f"The image is corrupt and cannot be read ({_said(error)}).") from None


def too_large_message(size: int) -> str:
    return (
        f"The file is larger than the {settings.MAX_UPLOAD_BYTES / 1_048_576:g} MB limit "
        f"({size / 1_048_576:.1f} MB or more)."
    )


def _too_many_pixels_message(size: tuple[int, int] | None) -> str:
    cap = settings.MAX_IMAGE_PIXELS / 1_000_000
    if size is None:
        return f"The image has far more pixels than the {cap:.0f} megapixel limit."
    width, height = size
    return (
        f"The image is {width}x{height} ({width * height / 1_000_000:.1f} megapixels); "
        f"the limit is {cap:.0f} megapixels."
    )


def _said(error: Exception) -> str:
    """A decoder's complaint on one line (libheif's end in a newline)."""
    return " ".join(str(error).split())
