"""What a photo's EXIF says about it: when it was taken, with what, and where.

Read once at upload from the already-decoded image (Pillow's own EXIF reader) into plain values the
database keeps. Cameras write EXIF badly often enough that every field is optional: a value that is
missing, malformed or impossible is left out, never an error, and never rejects the photo.
"""
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
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


def read_metadata(image: PILImage.Image) -> PhotoMetadata:
    try:
        exif = image.getexif()
        details = exif.get_ifd(EXIF_IFD)
        gps = exif.get_ifd(GPS_IFD)
    except Exception:  # a broken EXIF block: the photo itself is fine
        return PhotoMetadata()
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
    )


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    return " ".join(value.replace("\x00", " ").split())[:100]


def _camera(make, model) -> str:
    make, model = _text(make), _text(model)
    # Most cameras repeat the maker in the model name ("Canon" + "Canon EOS R5").
    return model if make and model.lower().startswith(make.split()[0].lower()) else " ".join(filter(None, [make, model]))


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
