"""EXIF at upload (gallery/exif.py): date taken with its zone, camera, exposure and GPS; missing or
malformed values are left out, never an error; the location is for the photo's owner only."""

import io
from datetime import datetime, timedelta, timezone

import pytest
from django.urls import reverse
from PIL import Image as PILImage
from rest_framework.test import APIClient

from gallery.exif import read_metadata, without_location
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
    found = metadata(
        images.camera_jpeg(gps=((33, 51, 36), "S", (151, 12, 36), "W"), make="NIKON CORPORATION", model="Z 6")
    )
    assert (found.latitude, found.longitude) == (-33.86, -151.21)
    assert found.camera == "NIKON CORPORATION Z 6"


def test_without_an_offset_the_time_is_read_in_the_sites_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    found = metadata(images.camera_jpeg(offset=None))
    assert found.taken_at.utcoffset() == timedelta(hours=2)  # CEST in July


def test_missing_and_malformed_values_are_left_out():
    assert metadata(images.jpeg()) == metadata(images.png())  # no EXIF at all: nothing known
    assert metadata(images.jpeg()).taken_at is None and metadata(images.jpeg()).camera == ""
    broken = metadata(
        images.camera_jpeg(taken="0000:00:00 00:00:00", offset="+99:99", gps=((95, 0, 0), "N", (13, 0, 0), "E"))
    )
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
    assert "<dt>Taken</dt><dd>14 Jul 2024" in page and "1/250 s · f/2.8 · ISO 400 · 50 mm" in page and "52.52" in page
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


# --- What others download: the photo without where it was taken ---------------------------------


def scan_bytes(jpeg: bytes) -> bytes:
    """Everything from the first start-of-scan marker: the compressed pixels."""
    return jpeg[jpeg.index(b"\xff\xda") :]


def test_gps_leaves_a_jpeg_without_touching_its_pixels_or_the_rest_of_its_exif():
    original = images.camera_jpeg(orientation=6)
    stripped = without_location(original, "JPEG")
    assert scan_bytes(stripped) == scan_bytes(original)
    kept = metadata(stripped)
    assert kept.latitude is None and not kept.carries_location
    assert kept.camera == "Canon EOS R5" and kept.taken_at == metadata(original).taken_at
    with PILImage.open(io.BytesIO(stripped)) as image:
        assert image.getexif()[0x0112] == 6  # still turned the right way up


def test_a_file_that_says_nothing_of_where_is_left_alone():
    assert without_location(images.jpeg(), "JPEG") is None
    assert without_location(images.camera_jpeg(gps=None), "JPEG") is None
    assert without_location(images.png(), "PNG") is None
    assert not metadata(images.camera_jpeg(gps=None)).carries_location


def test_xmp_goes_too_since_editors_write_gps_there():
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="52,31.2N"/></rdf:RDF></x:xmpmeta>'
    )
    original = images.encode(images.scene(), "JPEG", quality=90, xmp=xmp)
    assert metadata(original).carries_location
    stripped = without_location(original, "JPEG")
    assert b"GPSLatitude" not in stripped and scan_bytes(stripped) == scan_bytes(original)


def test_an_unreadable_exif_block_goes_whole():
    original = images.camera_jpeg()
    start = original.index(b"Exif\x00\x00") + 6
    broken = original[:start] + b"XX" + original[start + 2 :]  # no longer a TIFF header
    assert metadata(broken).carries_location
    stripped = without_location(broken, "JPEG")
    assert b"Exif\x00\x00" not in stripped and scan_bytes(stripped) == scan_bytes(original)


def test_a_png_with_gps_is_reencoded_without_it_pixel_for_pixel():
    exif = PILImage.Exif()
    exif[0x010F] = "Canon"
    exif.get_ifd(0x8825)[1] = "N"
    original = images.encode(images.scene(), "PNG", exif=exif)
    stripped = without_location(original, "PNG")
    with PILImage.open(io.BytesIO(original)) as before, PILImage.open(io.BytesIO(stripped)) as after:
        assert after.format == "PNG" and after.tobytes() == before.tobytes()
        assert 0x8825 not in after.getexif() and after.getexif()[0x010F] == "Canon"


def test_others_download_a_public_photo_without_gps_unless_its_owner_shares_it(client, owner, stranger, upload):
    original = images.camera_jpeg()
    image = upload(owner, original, "trip.jpg").image
    Image.objects.filter(pk=image.pk).update(is_public=True)
    file_url, api_url = reverse("gallery:image_file", args=[image.pk]), reverse("api:image_file", args=[image.pk])

    client.force_login(owner)
    assert b"".join(client.get(file_url).streaming_content) == original  # the owner's own bytes
    client.force_login(stranger)
    for url in (file_url, file_url + "?download=1", api_url):
        served = b"".join(client.get(url).streaming_content)
        assert metadata(served).latitude is None and not metadata(served).carries_location
        assert scan_bytes(served) == scan_bytes(original)

    client.force_login(owner)
    client.post(reverse("gallery:image_location", args=[image.pk]), {"share_location": "1"})
    client.force_login(stranger)
    assert b"".join(client.get(file_url).streaming_content) == original
    assert "52.52" in client.get(reverse("gallery:image_detail", args=[image.pk])).content.decode()
    api = APIClient()
    api.force_authenticate(stranger)
    assert api.get(reverse("api:image", args=[image.pk])).json()["location"] == {"latitude": 52.52, "longitude": 13.4}


def test_only_the_owner_may_share_the_location(client, owner, stranger, upload):
    image = upload(owner, images.camera_jpeg(), "trip.jpg").image
    Image.objects.filter(pk=image.pk).update(is_public=True)
    client.force_login(stranger)
    assert client.post(reverse("gallery:image_location", args=[image.pk]), {"share_location": "1"}).status_code == 404
    api = APIClient()
    api.force_authenticate(stranger)
    assert api.patch(reverse("api:image", args=[image.pk]), {"share_location": True}, format="json").status_code == 404
    assert not Image.objects.get(pk=image.pk).share_location


def test_the_copy_without_gps_is_deleted_with_the_photo(
    client, owner, stranger, upload, settings, django_capture_on_commit_callbacks
):
    from pathlib import Path

    from gallery.services import image_delete, without_location_name

    image = upload(owner, images.camera_jpeg(), "trip.jpg").image
    Image.objects.filter(pk=image.pk).update(is_public=True)
    client.force_login(stranger)
    client.get(reverse("gallery:image_file", args=[image.pk]))
    copy = Path(settings.MEDIA_ROOT) / without_location_name(image)
    assert copy.exists()
    with django_capture_on_commit_callbacks(execute=True):
        image_delete(image=Image.objects.get(pk=image.pk))
    assert not copy.exists()


XMP_WITH_GPS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="52,31.2N"/></rdf:RDF></x:xmpmeta>'
)


def exif_blocks(jpeg: bytes) -> list[bytes]:
    """The payloads of every APP1 Exif segment before the pixels."""
    blocks, position = [], 2
    while jpeg[position] == 0xFF and jpeg[position + 1] != 0xDA:
        end = position + 2 + int.from_bytes(jpeg[position + 2 : position + 4], "big")
        if jpeg[position + 1] == 0xE1 and jpeg[position + 4 : position + 10] == b"Exif\x00\x00":
            blocks.append(jpeg[position + 4 : end])
        position = end
    return blocks


def test_gps_in_a_second_exif_block_of_a_jpeg_is_found_and_goes():
    original = images.camera_jpeg(gps=None)  # the first block: a camera's, without a position
    second = PILImage.Exif()
    second.get_ifd(0x8825)[1] = "N"
    payload = b"Exif\x00\x00" + second.tobytes()
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    first = original.index(b"\xff\xe1")  # the camera's own Exif segment; the second goes after it
    first_end = first + 2 + int.from_bytes(original[first + 2 : first + 4], "big")
    doubled = original[:first_end] + app1 + original[first_end:]
    assert [block[:6] for block in exif_blocks(doubled)] == [b"Exif\x00\x00"] * 2
    # Pillow reads the second block as the tail of the first and never sees its GPS directory.
    assert metadata(doubled).carries_location
    stripped = without_location(doubled, "JPEG")
    assert stripped is not None and scan_bytes(stripped) == scan_bytes(original)
    for block in exif_blocks(stripped):
        exif = PILImage.Exif()
        exif.load(block[6:])
        assert 0x8825 not in exif


def test_xmp_in_a_tiff_goes_though_pillows_tiff_writer_copies_it_back():
    original = images.encode(images.scene(), "TIFF", tiffinfo={700: XMP_WITH_GPS})
    assert metadata(original).carries_location
    stripped = without_location(original, "TIFF")
    assert stripped is not None and b"GPSLatitude" not in stripped
    with PILImage.open(io.BytesIO(original)) as before, PILImage.open(io.BytesIO(stripped)) as after:
        assert 700 not in after.tag_v2 and after.tobytes() == before.tobytes()


def with_position(image_format: str, place: str) -> bytes:
    """A picture in `image_format` whose position is in `place`: its EXIF GPS directory, or XMP."""
    from PIL import PngImagePlugin

    options: dict = {"lossless": True} if image_format == "WEBP" else {}
    if place == "exif":
        from PIL.TiffImagePlugin import IFDRational

        position = {1: "N", 2: (IFDRational(52), IFDRational(31), IFDRational(12))}
        if image_format == "TIFF":  # a TIFF's EXIF is its own directory: the GPS one hangs off it
            options["tiffinfo"] = {0x010F: "Canon", 0x8825: position}
        else:
            exif = PILImage.Exif()
            exif[0x010F] = "Canon"  # (Pillow writes no EXIF that holds only a GPS directory)
            exif.get_ifd(0x8825).update(position)
            options["exif"] = exif
    elif image_format == "PNG":  # PNG keeps XMP in an iTXt chunk
        chunks = PngImagePlugin.PngInfo()
        chunks.add_itxt("XML:com.adobe.xmp", XMP_WITH_GPS.decode())
        options["pnginfo"] = chunks
    elif image_format == "TIFF":
        options["tiffinfo"] = {700: XMP_WITH_GPS}
    else:
        options["xmp"] = XMP_WITH_GPS
    return images.encode(images.scene(), image_format, **options)


@pytest.mark.parametrize("place", ["exif", "xmp"])
@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_a_position_wherever_a_format_keeps_it_is_found_and_goes(image_format, place):
    original = with_position(image_format, place)
    assert metadata(original).carries_location
    stripped = without_location(original, image_format)
    assert stripped is not None and b"GPSLatitude" not in stripped
    with PILImage.open(io.BytesIO(stripped)) as after:
        assert 0x8825 not in after.getexif() and not after.info.get("xmp") and not after.info.get("XML:com.adobe.xmp")
        assert after.format == image_format and not read_metadata(after).carries_location
