"""What a photo's EXIF says about it: when it was taken, with what, and where.

Read once at upload from the already-decoded image (Pillow's own EXIF reader) into plain values the
database keeps. Cameras write EXIF badly often enough that every field is optional: a value that is
missing, malformed or impossible is left out, never an error, and never rejects the photo.
"""

import math
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.conf import settings
from PIL import Image as PILImage

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, DATETIME = 0x010F, 0x0110, 0x0132
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
EXPOSURE_TIME, F_NUMBER, ISO, FOCAL_LENGTH, LENS_MODEL = 0x829A, 0x829D, 0x8827, 0x920A, 0xA434
GPS_LATITUDE_REF, GPS_LATITUDE, GPS_LONGITUDE_REF, GPS_LONGITUDE = 1, 2, 3, 4


@dataclass(frozen=True)
class PhotoMetadata:
    taken_at: datetime | None = None  # aware; a camera's local time without an offset is read in TIME_ZONE
    taken_offset_minutes: int | None = None  # the camera's UTC offset, when the photo records it
    camera: str = ""
    lens: str = ""
    exposure_seconds: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length_mm: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    # The file holds GPS or XMP (which may hold GPS), readable or not: others get it without them.
    carries_location: bool = False


def read_metadata(image: PILImage.Image) -> PhotoMetadata:
    try:
        exif = image.getexif()
        details = exif.get_ifd(EXIF_IFD)
        gps = exif.get_ifd(GPS_IFD)
    except Exception:  # a broken EXIF block: the photo itself is fine, but the block may hold anything
        return PhotoMetadata(carries_location=True)
    latitude = _coordinate(gps.get(GPS_LATITUDE), gps.get(GPS_LATITUDE_REF), limit=90)
    longitude = _coordinate(gps.get(GPS_LONGITUDE), gps.get(GPS_LONGITUDE_REF), limit=180)
    has_position = latitude is not None and longitude is not None
    taken_at = _taken_at(details.get(DATETIME_ORIGINAL) or exif.get(DATETIME), details.get(OFFSET_TIME_ORIGINAL))
    offset = _offset(details.get(OFFSET_TIME_ORIGINAL)) if taken_at else None
    return PhotoMetadata(
        taken_at=taken_at,
        taken_offset_minutes=None if offset is None else round(offset.utcoffset(None).total_seconds() / 60),
        camera=_camera(exif.get(MAKE), exif.get(MODEL)),
        lens=_text(details.get(LENS_MODEL)),
        exposure_seconds=_positive(details.get(EXPOSURE_TIME)),
        f_number=_positive(details.get(F_NUMBER)),
        iso=_iso(details.get(ISO)),
        focal_length_mm=_positive(details.get(FOCAL_LENGTH)),
        latitude=latitude if has_position else None,
        longitude=longitude if has_position else None,
        carries_location=_carries_location(image, exif),
    )


def _carries_location(image: PILImage.Image, exif: PILImage.Exif) -> bool:
    unreadable = bool(image.info.get("exif")) and not len(exif)  # Pillow reads a broken block as empty
    # (A GPS directory left empty, an XMP packet blanked: what without_location leaves in a RAW.)
    has_gps = GPS_IFD in exif and bool(exif.get_ifd(GPS_IFD))
    has_xmp = bool(_text(exif.get(TIFF_XMP))) or any(image.info.get(key) for key in ("xmp", "XML:com.adobe.xmp"))
    if has_gps or has_xmp or unreadable:
        return True
    if image.format in UNSTRIPPABLE_RAW:  # where it keeps GPS we cannot tell: as if it did
        return True
    # A JPEG may hold several Exif blocks; Pillow reads the later ones as the first one's tail.
    blocks = [payload for marker, payload in getattr(image, "applist", []) if marker == "APP1"]
    return any(_block_has_gps(payload) for payload in blocks if payload.startswith(EXIF_HEADER))


def _block_has_gps(payload: bytes) -> bool:
    """Whether one APP1 Exif block holds a GPS directory (an unreadable one may hold anything)."""
    exif = PILImage.Exif()
    try:
        exif.load(payload)
    except Exception:
        return True
    return GPS_IFD in exif


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    return " ".join(value.replace("\x00", " ").split())[:100]


def _camera(make, model) -> str:
    make, model = _text(make), _text(model)
    # Most cameras repeat the maker in the model name ("Canon" + "Canon EOS R5").
    return (
        model if make and model.lower().startswith(make.split()[0].lower()) else " ".join(filter(None, [make, model]))
    )


def _taken_at(stamp, offset) -> datetime | None:
    try:
        naive = datetime.strptime(_text(stamp)[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:  # missing, "0000:00:00 00:00:00", or garbage
        return None
    zone = _offset(offset) or ZoneInfo(settings.TIME_ZONE)
    return naive.replace(tzinfo=zone)


def _offset(value) -> dt_timezone | None:
    text = _text(value)
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return None
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    if hours > 14 or minutes > 59:
        return None
    sign = 1 if text[0] == "+" else -1
    return dt_timezone(sign * timedelta(hours=hours, minutes=minutes))


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _positive(value) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


def _iso(value) -> int | None:
    if isinstance(value, tuple):
        value = value[0] if value else None
    number = _positive(value)
    return int(number) if number is not None and number < 10_000_000 else None


def _coordinate(parts, ref, *, limit: float) -> float | None:
    if not isinstance(parts, tuple) or len(parts) != 3:
        return None
    degrees, minutes, seconds = (_number(part) for part in parts)
    if None in (degrees, minutes, seconds):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    if _text(ref).upper() in {"S", "W"}:
        value = -value
    return round(value, 6) if abs(value) <= limit else None


# --- Sharing a photo without where it was taken --------------------------------------------------

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
TIFF_XMP, TIFF_IPTC, TIFF_PHOTOSHOP = 700, 33723, 34377
EXIF_HEADER = b"Exif\x00\x00"
# JPEG markers without a length field: TEM and the restart markers.
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}
START_OF_SCAN = 0xDA


def boxed_xmp(data: bytes) -> bool:
    """Whether a JPEG XL container holds an XMP box ("xml "), which the JPEG XL plugin neither reads
    nor writes: such a file is taken to carry a location (its copies for others lose the box)."""
    if not data.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return False
    position = 0
    while position + 8 <= len(data):
        size, kind = int.from_bytes(data[position : position + 4], "big"), data[position + 4 : position + 8]
        if kind == b"xml ":
            return True
        if size == 1 and position + 16 <= len(data):  # a 64-bit size follows
            size = int.from_bytes(data[position + 8 : position + 16], "big")
        if size < 8:  # 0: the box runs to the end of the file
            return False
        position += size
    return False


class CannotStripLocation(ValueError):
    """A camera RAW container whose metadata we cannot rewrite in place (CR3, RAF)."""


# RAW containers that are not TIFF-structured: their GPS cannot be removed from the file itself.
UNSTRIPPABLE_RAW = {"CR3", "RAF", "RAW"}


def without_location(data: bytes, image_format: str) -> bytes | None:
    """The same photo without where it was taken, or None when the file says nothing of where.

    What goes: EXIF's GPS directory and XMP (which cameras and editors also fill with GPS). JPEG keeps
    every pixel byte, its other EXIF (date, camera, orientation) and ICC profile: only the metadata
    segments are rewritten. A TIFF-structured camera RAW (DNG, CR2, NEF, ARW, ORF, RW2, PEF) keeps
    every byte but its GPS directory and XMP packet, blanked in place; an MPO (JPEG with more
    pictures after it) is rewritten as a JPEG while that keeps them all. Other formats are re-encoded
    without them (losslessly where the format is). Raises CannotStripLocation for RAW containers
    that cannot be rewritten (the caller sends a JPEG of the picture instead).
    """
    from gallery.formats import RAW_FORMATS

    if image_format in UNSTRIPPABLE_RAW:
        raise CannotStripLocation(f"the location cannot be removed from a {image_format} file itself")
    if image_format == "JPEG" and data[:2] == b"\xff\xd8":
        return _jpeg_without_location(data)
    if image_format == "MPO" and data[:2] == b"\xff\xd8":
        # A phone's JPEG with more pictures after it (depth, an Ultra HDR gain map): its first
        # picture's metadata is rewritten as a JPEG's; if that leaves a later picture with a
        # position, or the pictures no longer found, the first is re-encoded alone instead.
        stripped = _jpeg_without_location(data)
        if _pictures_kept_without_gps(data, stripped or data):
            return stripped
    if image_format in RAW_FORMATS:
        return _tiff_without_location(data)
    return _reencoded_without_location(data)


# Bytes per value of each TIFF field type.
_TIFF_TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}


def _tiff_without_location(data: bytes) -> bytes | None:
    """A TIFF-structured file with its GPS directory emptied and its XMP packet blanked, in place:
    every other byte (the sensor data, the previews, the maker notes) as it was."""
    order = "<" if data[:2] == b"II" else ">"
    out = bytearray(data)

    def number(fmt: str, offset: int) -> int:
        return struct.unpack_from(order + fmt, data, offset)[0]

    def entries(directory: int):
        for index in range(number("H", directory)):
            entry = directory + 2 + 12 * index
            size = _TIFF_TYPE_SIZES.get(number("H", entry + 2), 1) * number("I", entry + 4)
            yield entry, number("H", entry), size, (number("I", entry + 8) if size > 4 else entry + 8)

    def blank(offset: int, size: int, fill: bytes = b"\0") -> None:
        if offset + size > len(out):
            raise CannotStripLocation("a directory points past the end of the file")
        out[offset : offset + size] = fill * size

    changed = False
    try:
        for entry, tag, size, value_at in list(entries(number("I", 4))):
            if tag == GPS_IFD:
                gps = number("I", entry + 8)
                for gps_entry, _, gps_size, gps_value_at in list(entries(gps)):
                    if gps_size > 4:
                        blank(gps_value_at, gps_size)
                    blank(gps_entry, 12)
                struct.pack_into(order + "H", out, gps, 0)  # an empty directory
                changed = True
            elif tag == TIFF_XMP:
                blank(value_at, size, b" ")
                changed = True
    except struct.error:
        raise CannotStripLocation("its directories are malformed") from None
    return bytes(out) if changed else None


def _exif_without_gps(exif: PILImage.Exif) -> bool:
    """Drop the GPS directory from `exif`; True if there was one."""
    if GPS_IFD not in exif:
        return False
    del exif[GPS_IFD]
    return True


def _jpeg_without_location(data: bytes) -> bytes | None:
    out, position, changed = [data[:2]], 2, False
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker in _STANDALONE_MARKERS or marker == 0xFF:
            out.append(data[position : position + 2])
            position += 2
            continue
        if marker == START_OF_SCAN:
            break
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        segment, payload = data[position:end], data[position + 4 : end]
        if marker == 0xE1 and payload.startswith(EXIF_HEADER):
            exif = PILImage.Exif()
            try:
                exif.load(payload)
                dropped = _exif_without_gps(exif)
            except Exception:  # unreadable EXIF: it may hold anything, so it goes whole
                segment, dropped = b"", True
            if dropped:
                changed = True
                if segment and not len(exif):  # GPS was all it held: an empty block would read as unreadable
                    segment = b""
                elif segment:
                    rewritten = exif.tobytes()
                    segment = b"\xff\xe1" + (len(rewritten) + 2).to_bytes(2, "big") + rewritten
        elif marker == 0xE1 and payload.startswith(XMP_HEADER):
            segment, changed = b"", True
        out.append(segment)
        position = end
    if not changed:
        return None
    out.append(data[position:])  # the scans: the pixels, untouched
    return b"".join(out)


def _pictures_kept_without_gps(original: bytes, stripped: bytes) -> bool:
    """Whether `stripped` holds as many pictures as `original`, of the same sizes, none with GPS."""
    import io

    def pictures(data: bytes) -> list[tuple[tuple[int, int], bool]]:
        with PILImage.open(io.BytesIO(data)) as image:
            found = []
            for frame in range(getattr(image, "n_frames", 1)):
                image.seek(frame)
                found.append((image.size, bool(image.getexif().get_ifd(GPS_IFD))))
            return found

    try:
        before, after = pictures(original), pictures(stripped)
    except Exception:  # a picture the rewrite broke
        return False
    return [size for size, _ in after] == [size for size, _ in before] and not any(gps for _, gps in after)


def _reencoded_without_location(data: bytes) -> bytes | None:
    import io

    from gallery.formats import open_image

    with open_image(data) as image:
        exif = image.getexif()
        has_gps = _exif_without_gps(exif)
        has_xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or boxed_xmp(data)
        if not has_gps and not has_xmp:
            return None
        image_format = image.format
        if image_format == "TIFF":
            # A TIFF's EXIF is its own first directory, and Pillow's TIFF writer copies these tags
            # from the file it read as well: XMP, and the IPTC and Photoshop blocks (which can hold
            # XMP and place names), would go out again.
            for tag in (TIFF_XMP, TIFF_IPTC, TIFF_PHOTOSHOP):
                image.tag_v2.pop(tag, None)
                exif.pop(tag, None)
        # Named even when empty: several writers (WebP, AVIF, HEIF) fall back to the EXIF and XMP
        # the image was read with.
        options: dict = {"exif": exif.tobytes() if len(exif) else b"", "xmp": b""}
        if image_format == "HEIF":  # pillow-heif: None, not empty bytes, for none
            options = {"exif": options["exif"] or None, "xmp": None}
        if image_format == "WEBP":
            options.update(lossless=image.info.get("lossless", False), quality=95)
        elif image_format in {"JPEG", "MPO", "HEIF", "AVIF", "JXL"}:
            image_format = "JPEG" if image_format == "MPO" else image_format
            options.update(quality=95, icc_profile=image.info.get("icc_profile"))
        buffer = io.BytesIO()
        image.save(buffer, image_format, **options)
    return buffer.getvalue()
