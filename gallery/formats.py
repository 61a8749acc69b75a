"""Which photo files we read, and how: every format phones and cameras write.

Pillow reads JPEG (and MPO, the JPEG many phones write), PNG, WebP, GIF, BMP, TIFF and AVIF;
pillow-heif adds HEIC/HEIF, the iPhone's default, and pillow-jxl-plugin JPEG XL. Camera RAW files are read through LibRaw (rawpy):
the JPEG preview the camera embedded when it is (nearly) full size, else the sensor data demosaiced
with the camera's white balance. `open_image` is the one way in: it answers a Pillow image whatever
the file, with `format` naming what the file is, so validation, thumbnails and the models need not
know. The kind of file is decided from its bytes, never from its name.
"""

import contextlib
import io
import warnings
from typing import BinaryIO

import numpy as np
import pillow_heif
import pillow_jxl  # noqa: F401 (registers JPEG XL with Pillow)
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

pillow_heif.register_heif_opener()

# Format name (Pillow's, or ours for RAW) -> the extension an original is stored under.
PILLOW_FORMATS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
    "HEIF": "heic",
    "AVIF": "avif",
    "JXL": "jxl",
}
RAW_FORMATS = {
    "DNG": "dng",
    "CR2": "cr2",
    "CR3": "cr3",
    "NEF": "nef",
    "ARW": "arw",
    "RAF": "raf",
    "ORF": "orf",
    "RW2": "rw2",
    "PEF": "pef",
}
# "RAW": another camera's RAW that LibRaw reads.
ACCEPTED_FORMATS = {**PILLOW_FORMATS, **RAW_FORMATS, "RAW": "raw"}
ACCEPTED_HUMAN = (
    "JPEG, HEIC, AVIF, JPEG XL, PNG, WebP, GIF, BMP, TIFF or camera RAW (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF)"
)
# What a browser shows in an <img>: other originals are shown as a JPEG made from them.
BROWSER_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "AVIF"}  # not JPEG XL: Safari alone
# File-picker hint for upload forms (a RAW file is not image/* to every browser).
ACCEPT_ATTRIBUTE = "image/*,.heic,.heif,.avif,.jxl," + ",".join(f".{extension}" for extension in RAW_FORMATS.values())

TIFF_HEADERS = {b"II*\x00", b"MM\x00*"}
# A camera's embedded preview stands in for the RAW when it is at least this share of its size.
PREVIEW_MIN_SHARE = 0.9
# LibRaw's `flip` -> the rotation that shows the picture upright.
_FLIP_TRANSPOSE = {
    3: PILImage.Transpose.ROTATE_180,
    5: PILImage.Transpose.ROTATE_90,
    6: PILImage.Transpose.ROTATE_270,
}


class RawUnreadable(ValueError):
    """LibRaw recognised no camera RAW in the bytes, or could not decode it."""


def raw_kind(head: bytes) -> str | None:
    """Which RAW container `head` (a file's first 16 bytes and its TIFF IFD0, if any) starts, or None.

    TIFF-based RAW (DNG, CR2, NEF, ARW, PEF) shares its header with TIFF; `tiff_raw_kind` tells them
    apart from their tags once the file is parsed.
    """
    if head[4:12] == b"ftypcrx ":
        return "CR3"
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "RAF"
    if head[:4] in {b"IIRO", b"IIRS", b"MMOR"}:
        return "ORF"
    if head[:4] == b"IIU\x00":
        return "RW2"
    if head[:4] in {b"II*\x00", b"MM\x00*"} and head[8:10] == b"CR":
        return "CR2"
    return None


def tiff_raw_kind(exif: PILImage.Exif) -> str | None:
    """For a TIFF-structured file, the RAW kind its first directory names, or None for a TIFF.

    A DNG says so (DNGVersion). Other cameras' TIFF-based RAW (NEF, ARW, PEF) put a small preview or
    nothing in the first directory and the sensor data further on: a reduced-resolution first image,
    sub-directories, or colour-filter-array data mark one, and the maker names it. A TIFF a camera
    maker's software exported is a TIFF.
    """
    if 50706 in exif:  # DNGVersion
        return "DNG"
    reduced = isinstance(exif.get(254), int) and exif[254] & 1  # NewSubfileType: a reduced image
    if not (reduced or 330 in exif or exif.get(262) == 32803):  # SubIFDs; PhotometricInterpretation CFA
        return None
    make = str(exif.get(0x010F, "")).strip().upper()
    for maker, kind in (("NIKON", "NEF"), ("SONY", "ARW"), ("PENTAX", "PEF"), ("RICOH", "PEF")):
        if make.startswith(maker):
            return kind
    return "RAW"


def open_image(source: bytes | BinaryIO, *, at_least: int | None = None) -> PILImage.Image:
    """The photo in `source` as a Pillow image, its `format` naming the file's kind.

    Pillow's formats open lazily (pixels decoded on load(), as Pillow does); a RAW file is decoded
    here, at half size when its long side stays at least `at_least` that way (four times faster: a
    24 MP demosaic takes 1.5 s here). Raises UnidentifiedImageError when nothing reads the bytes,
    RawUnreadable for a RAW file LibRaw cannot decode, and Pillow's own errors for a malformed file.
    """
    data = source if isinstance(source, bytes) else source.read()
    kind = raw_kind(data[:16])
    if kind is None and data[:4] in TIFF_HEADERS:
        directory = PILImage.Exif()
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a broken TIFF: Pillow says what is wrong when it opens it
            directory.load(data)
        kind = tiff_raw_kind(directory)
    if kind is not None:
        return _open_raw(data, kind, at_least)
    try:
        return PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return _open_raw(data, None, at_least)  # a RAW of a camera not listed, if LibRaw reads it


def _open_raw(data: bytes, kind: str | None, at_least: int | None = None) -> PILImage.Image:
    import rawpy

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            image, preview_exif = _raw_pixels(raw, rawpy, at_least)
    except (rawpy.LibRawError, ValueError, OSError) as error:
        if kind is None:  # neither Pillow nor LibRaw knows these bytes
            raise UnidentifiedImageError("cannot identify image file") from error
        raise RawUnreadable(f"this {kind} file cannot be decoded ({error})") from error
    image.format = kind or "RAW"
    # What the camera recorded (date, camera, lens, GPS) is in the RAW's own TIFF directories, or
    # for the other containers in the preview's EXIF: read_metadata reads either from here.
    exif = data if data[:4] in TIFF_HEADERS else preview_exif
    if exif:
        image.info["exif"] = exif if exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + exif
        image.getexif().pop(0x0112, None)  # the pixels are upright already
    return image


def _raw_pixels(raw, rawpy, at_least: int | None = None) -> tuple[PILImage.Image, bytes | None]:
    """The picture upright, and the embedded preview's EXIF if it has one: the preview when it is
    (nearly) full size, else the sensor data demosaiced (LibRaw turns it upright itself)."""
    sizes = raw.sizes
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        thumb = None
    if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
        with PILImage.open(io.BytesIO(thumb.data)) as preview:
            if max(preview.size) >= PREVIEW_MIN_SHARE * max(sizes.width, sizes.height):
                exif = preview.info.get("exif")
                if preview.getexif().get(0x0112, 1) != 1:
                    upright = ImageOps.exif_transpose(preview).convert("RGB")
                else:
                    upright = preview.convert("RGB")
                    if sizes.flip in _FLIP_TRANSPOSE:
                        upright = upright.transpose(_FLIP_TRANSPOSE[sizes.flip])
                return upright, exif
    half = at_least is not None and max(sizes.width, sizes.height) // 2 >= at_least
    pixels = raw.postprocess(use_camera_wb=True, output_bps=8, half_size=half)
    return PILImage.fromarray(np.ascontiguousarray(pixels)), None
