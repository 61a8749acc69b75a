"""EXIF at upload (gallery/exif.py): date taken with its zone, camera, exposure and GPS; missing or
malformed values are left out, never an error; the location is for the photo's owner only."""
import io
from datetime import datetime, timedelta, timezone

from django.urls import reverse
from PIL import Image as PILImage
from rest_framework.test import APIClient

from gallery.exif import read_metadata
from gallery.models import Image
from tests import images


def metadata(data: bytes):
    with PILImage.open(io.BytesIO(data)) as image:
        return read_metadata(image)


def test_a_cameras_exif_is_read():
    found = metadata(images.camera_jpeg())
    assert found.taken_at == datetime(2024, 7, 14, 18, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert (found.camera, found.lens) == ("Canon EOS R5", "RF50mm F1.8 STM")
    assert (found.exposure_seconds, found.f_number, found.iso, found.focal_length_mm) == (0.004, 2.8, 400, 50.0)
    assert (found.latitude, found.longitude) == (52.52, 13.4)


def test_south_and_west_are_negative_and_maker_is_not_repeated():
    found = metadata(images.camera_jpeg(gps=((33, 51, 36), "S", (151, 12, 36), "W"), make="NIKON CORPORATION",
                                        model="Z 6"))
    assert (found.latitude, found.longitude) == (-33.86, -151.21)
    assert found.camera == "NIKON CORPORATION Z 6"


def test_without_an_offset_the_time_is_read_in_the_sites_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    found = metadata(images.camera_jpeg(offset=None))
    assert found.taken_at.utcoffset() == timedelta(hours=2)  # CEST in July


def test_missing_and_malformed_values_are_left_out():
    assert metadata(images.jpeg()) == metadata(images.png())  # no EXIF at all: nothing known
    assert metadata(images.jpeg()).taken_at is None and metadata(images.jpeg()).camera == ""
    broken = metadata(images.camera_jpeg(taken="0000:00:00 00:00:00", offset="+99:99",
                                         gps=((95, 0, 0), "N", (13, 0, 0), "E")))
    assert broken.taken_at is None
    assert broken.latitude is None and broken.longitude is None  # an impossible place is no place
    assert broken.camera == "Canon EOS R5"  # the rest is still read


def test_a_rotated_photo_keeps_its_metadata(owner, upload):
    image = Image.objects.get(pk=upload(owner, images.camera_jpeg(orientation=6), "rotated.jpg").image.pk)
    assert (image.width, image.height) == (120, 160) and image.camera == "Canon EOS R5"


def test_the_page_and_the_api_show_it_and_only_the_owner_sees_where(client, owner, stranger, upload):
    image = upload(owner, images.camera_jpeg(), "trip.jpg").image
    image.is_public = True
    image.save(update_fields=["is_public"])

    client.force_login(owner)
    page = client.get(reverse("gallery:image_detail", args=[image.pk])).content.decode()
    assert "Taken 14 Jul 2024" in page and "1/250 s · f/2.8 · ISO 400 · 50 mm" in page and "52.52" in page
    api = APIClient()
    api.force_authenticate(owner)
    mine = api.get(reverse("api:image", args=[image.pk])).json()
    assert mine["taken_at"].startswith("2024-07-14T") and mine["camera"] == "Canon EOS R5"
    assert mine["location"] == {"latitude": 52.52, "longitude": 13.4}

    client.force_login(stranger)
    page = client.get(reverse("gallery:image_detail", args=[image.pk])).content.decode()
    assert "Canon EOS R5" in page and "52.52" not in page
    api.force_authenticate(stranger)
    theirs = api.get(reverse("api:image", args=[image.pk])).json()
    assert theirs["camera"] == "Canon EOS R5" and theirs["location"] is None
