"""What a photo's EXIF says about it: when it was taken, with what, and where.

Read once at upload from the already-decoded image (Pillow's own EXIF reader) into plain values the
database keeps. Cameras write EXIF badly often enough that every field is optional: a value that is
missing, malformed or impossible is left out, never an error, and never rejects the photo.
"""

import math
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
    return PhotoMetadata(
        taken_at=_taken_at(details.get(DATETIME_ORIGINAL) or exif.get(DATETIME), details.get(OFFSET_TIME_ORIGINAL)),
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
    if GPS_IFD in exif or unreadable or any(key in image.info for key in ("xmp", "XML:com.adobe.xmp")):
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


def without_location(data: bytes, image_format: str) -> bytes | None:
    """The same photo without where it was taken, or None when the file says nothing of where.

    What goes: EXIF's GPS directory and XMP (which cameras and editors also fill with GPS). JPEG keeps
    every pixel byte, its other EXIF (date, camera, orientation) and ICC profile: only the metadata
    segments are rewritten. Other formats are re-encoded without them (losslessly where the format is).
    """
    if image_format == "JPEG" and data[:2] == b"\xff\xd8":
        return _jpeg_without_location(data)
    return _reencoded_without_location(data)


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


def _reencoded_without_location(data: bytes) -> bytes | None:
    import io

    with PILImage.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        has_gps = _exif_without_gps(exif)
        if not has_gps and not image.info.get("xmp") and not image.info.get("XML:com.adobe.xmp"):
            return None
        image_format = image.format
        if image_format == "TIFF":
            # A TIFF's EXIF is its own first directory, and Pillow's TIFF writer copies these tags
            # from the file it read as well: XMP, and the IPTC and Photoshop blocks (which can hold
            # XMP and place names), would go out again.
            for tag in (TIFF_XMP, TIFF_IPTC, TIFF_PHOTOSHOP):
                image.tag_v2.pop(tag, None)
                exif.pop(tag, None)
        options = {"exif": exif.tobytes()} if len(exif) else {}
        if image_format == "WEBP":
            options.update(lossless=image.info.get("lossless", False), quality=95)
        elif image_format in {"JPEG", "MPO"}:
            image_format, options["quality"] = "JPEG", 95
            options["icc_profile"] = image.info.get("icc_profile")
        buffer = io.BytesIO()
        image.save(buffer, image_format, **options)
    return buffer.getvalue()
