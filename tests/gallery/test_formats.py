"""Every format phones and cameras write: HEIC (the iPhone's), AVIF and camera RAW (here a DNG, the
Bayer data LibRaw decodes as it does any camera's), uploaded, read, processed, shown, and given to
others without where they were taken. Before, each was refused: "This file is not an image we can
read; upload a JPEG, PNG, WebP, GIF, BMP or TIFF image."."""

import io

import pytest
from django.urls import reverse
from PIL import Image as PILImage

from gallery.exif import CannotStripLocation, without_location
from gallery.formats import open_image, raw_kind
from gallery.models import Image
from tests import images

MAKERS = {"HEIF": images.heic, "AVIF": images.avif, "JXL": images.jxl, "DNG": images.dng}
EXTENSIONS = {"HEIF": "heic", "AVIF": "avif", "JXL": "jxl", "DNG": "dng"}


def located(data: bytes) -> bool:
    """Whether `data`, checked as an upload is, says where it was taken (EXIF GPS or XMP)."""
    from gallery.validation import validate_image_bytes

    return validate_image_bytes(data).metadata.carries_location


@pytest.mark.parametrize("image_format", list(MAKERS))
def test_a_photo_of_each_format_is_accepted_read_processed_and_shown(
    image_format, client, owner, upload, settings, colour_proposer
):
    original = MAKERS[image_format](seed=4)
    outcome = upload(owner, original, f"IMG_0001.{EXTENSIONS[image_format]}")
    assert outcome.outcome == "accepted", outcome.message
    image = Image.objects.get(pk=outcome.image.pk)
    assert image.status == "ready" and image.regions.filter(kind="object").exists(), image.error
    assert image.format == image_format and image.file.endswith(f".{EXTENSIONS[image_format]}")
    assert (image.width, image.height) == (160, 120)
    assert image.taken_at.isoformat() == "2025-09-27T23:13:05+00:00"  # 00:13:05 at +01:00
    assert image.camera in {"Apple iPhone 15 Pro", "Canon EOS R6"} and image.latitude == pytest.approx(52.52)
    assert (settings.MEDIA_ROOT / image.file).read_bytes() == original  # kept as uploaded

    client.force_login(owner)
    thumbnail = client.get(reverse("gallery:image_thumbnail", args=[image.pk]))
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    shown = client.get(reverse("gallery:image_file", args=[image.pk]))
    shown_bytes = b"".join(shown.streaming_content)
    downloaded = b"".join(client.get(reverse("gallery:image_file", args=[image.pk]) + "?download=1").streaming_content)
    assert downloaded == original  # the owner downloads the file itself
    with PILImage.open(io.BytesIO(shown_bytes)) as picture:
        # What the page shows: the photo as browsers show it (AVIF as itself, HEIC and RAW as JPEG).
        assert picture.format == ("AVIF" if image_format == "AVIF" else "JPEG") and picture.size == (160, 120)


@pytest.mark.parametrize(
    "image_format,damage",
    [("HEIF", "cut"), ("AVIF", "cut"), ("JXL", "cut"), ("DNG", "cut"), ("DNG", "no sensor data")],
)
def test_a_broken_file_of_each_format_is_refused_with_a_sentence_and_nothing_kept(
    image_format, damage, owner, upload, settings
):
    data = MAKERS[image_format]()
    broken = data[: len(data) // 2] if damage == "cut" else data[:400]
    outcome = upload(owner, broken, f"broken.{EXTENSIONS[image_format]}")
    assert outcome.outcome == "rejected" and outcome.message.endswith((".", ")")), outcome.message
    assert not Image.objects.exists() and not list((settings.MEDIA_ROOT / "originals").rglob("*.*"))


XMP_WITH_GPS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="52,31.2N"/></rdf:RDF></x:xmpmeta>'
)


@pytest.mark.parametrize("place", ["exif", "xmp"])
@pytest.mark.parametrize("image_format", list(MAKERS))
def test_the_position_goes_from_each_format_wherever_it_is_kept(image_format, place):
    if image_format == "DNG":
        original = images.dng(position=place == "exif", xmp=XMP_WITH_GPS if place == "xmp" else None)
    elif place == "exif":
        original = MAKERS[image_format]()
    elif image_format == "JXL":  # an XMP box after the picture, as cameras and editors append it
        original = images.jxl(position=False) + (8 + len(XMP_WITH_GPS)).to_bytes(4, "big") + b"xml " + XMP_WITH_GPS
    else:
        exif = images.camera_exif(position=False).tobytes()
        original = images.encode(images.scene(), image_format, quality=90, exif=exif, xmp=XMP_WITH_GPS)
    assert located(original)
    stripped = without_location(original, image_format)
    assert stripped is not None and not located(stripped) and b"GPSLatitude" not in stripped
    with open_image(original) as before, open_image(stripped) as after:
        assert after.format == image_format and after.size == before.size
        assert after.getexif().get(0x0110) == before.getexif().get(0x0110)  # the camera stays
        if image_format == "DNG":  # rewritten in place: the same size, the same sensor data
            assert len(stripped) == len(original) and after.tobytes() == before.tobytes()


def test_others_get_a_raw_without_its_position_and_its_owner_gets_it_whole(client, owner, stranger, upload):
    original = images.dng(seed=2)
    image = upload(owner, original, "IMG_0002.DNG").image
    Image.objects.filter(pk=image.pk).update(is_public=True)
    download = reverse("gallery:image_file", args=[image.pk]) + "?download=1"
    client.force_login(stranger)
    served = b"".join(client.get(download).streaming_content)
    assert not located(served) and len(served) == len(original)
    client.force_login(owner)
    assert b"".join(client.get(download).streaming_content) == original


def test_raw_containers_are_told_apart_by_their_bytes_not_their_names():
    assert raw_kind(b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01") == "CR3"
    assert raw_kind(b"FUJIFILMCCD-RAW 0201") == "RAF"
    assert raw_kind(b"IIRO\x08\x00\x00\x00" + bytes(8)) == "ORF"
    assert raw_kind(b"IIU\x00\x08\x00\x00\x00" + bytes(8)) == "RW2"
    assert raw_kind(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(4)) == "CR2"
    assert raw_kind(images.png()[:16]) is None and raw_kind(images.dng()[:16]) is None  # a DNG is told by its tags
    with pytest.raises(CannotStripLocation):  # their metadata cannot be rewritten: others get a JPEG
        without_location(b"FUJIFILMCCD-RAW 0201" + bytes(100), "RAF")


def test_a_page_shows_a_large_photo_as_a_screen_sized_jpeg_and_downloads_the_original(client, owner, upload, settings):
    settings.PREVIEW_SIZE = 256
    original = images.jpeg(800, 600, seed=5)
    image = upload(owner, original, "big.jpg").image
    client.force_login(owner)
    shown = b"".join(client.get(reverse("gallery:image_file", args=[image.pk])).streaming_content)
    with PILImage.open(io.BytesIO(shown)) as picture:
        assert picture.size == (256, 192) and len(shown) < len(original)  # before: the whole original
    download = client.get(reverse("gallery:image_file", args=[image.pk]) + "?download=1")
    assert b"".join(download.streaming_content) == original
    api = client.get(reverse("api:image_file", args=[image.pk]))  # scripts get the original itself
    assert b"".join(api.streaming_content) == original
    small = upload(owner, images.jpeg(200, 150, seed=6), "small.jpg").image
    assert b"".join(client.get(reverse("gallery:image_file", args=[small.pk])).streaming_content) == images.jpeg(
        200, 150, seed=6
    )


def test_the_kept_screen_sized_jpeg_goes_with_its_photo(
    client, owner, upload, settings, django_capture_on_commit_callbacks
):
    from gallery.services import image_delete, preview_name

    image = upload(owner, images.heic(seed=7), "IMG_0007.HEIC").image
    client.force_login(owner)
    assert client.get(reverse("gallery:image_file", args=[image.pk])).status_code == 200
    kept = settings.MEDIA_ROOT / preview_name(image)
    assert kept.exists()
    with django_capture_on_commit_callbacks(execute=True):
        image_delete(image=Image.objects.get(pk=image.pk))
    assert not kept.exists()


def test_the_worker_keeps_the_thumbnail_and_preview_from_its_own_decode(owner, upload, settings):
    """Pages decoded each photo again for its thumbnail and its preview (a 12 MP HEIC: a second each,
    bench/formats_bench.py); the worker now makes both from the decode it needs anyway."""
    from gallery.services import preview_name, thumbnail_name

    heic = upload(owner, images.heic(seed=8), "IMG_0008.HEIC").image
    small_jpeg = upload(owner, images.jpeg(200, 150, seed=9), "small.jpg").image
    assert (settings.MEDIA_ROOT / thumbnail_name(heic)).exists()  # before any page asked for it
    assert (settings.MEDIA_ROOT / preview_name(heic)).exists()  # browsers cannot show HEIC
    assert (settings.MEDIA_ROOT / thumbnail_name(small_jpeg)).exists()
    assert not (settings.MEDIA_ROOT / preview_name(small_jpeg)).exists()  # pages show the original itself


def test_a_phones_multi_picture_jpeg_is_a_jpeg_and_keeps_its_second_picture_without_the_position(
    client, owner, stranger, upload, colour_proposer
):
    """MPO: the JPEG with a second picture after it that many phones write (depth, or an Ultra HDR
    gain map). It is read, processed and shown as the JPEG it starts with; others get it without
    where it was taken. Pillow's MPO writer puts the EXIF, GPS and all, in every picture: rewriting
    the first picture's metadata would leave the second's position, so others get the first
    picture re-encoded (privacy before the gain map)."""
    original = images.mpo()
    assert located(original)
    image = upload(owner, original, "PXL_0001.MP.JPG").image
    image.refresh_from_db()
    assert (image.format, image.status, image.objects_status) == ("MPO", "ready", "found"), image.error
    assert image.regions.filter(kind="object").exists() and image.latitude == pytest.approx(52.52)
    Image.objects.filter(pk=image.pk).update(is_public=True)
    client.force_login(stranger)
    given = b"".join(client.get(reverse("gallery:image_file", args=[image.pk]) + "?download=1").streaming_content)
    assert given != original and not located(given)
    with PILImage.open(io.BytesIO(given)) as picture:
        assert picture.format == "JPEG" and picture.size == (160, 120)
        assert not picture.getexif().get_ifd(0x8825) and picture.getexif().get(0x0110) == "iPhone 15 Pro"


def test_an_mpo_whose_later_pictures_hold_no_position_keeps_them_all():
    """As phones write it: the position in the first picture only. Its metadata is rewritten as a
    JPEG's and the second picture (the gain map) stays, found where the MPF index says."""
    from gallery.exif import _tiff_without_location, without_location

    made = images.mpo()
    # Pillow wrote the EXIF into both pictures: blank the second's GPS in place, as a phone has none there.
    second_exif = made.index(b"Exif\x00\x00", made.index(b"Exif\x00\x00") + 1) + 6
    length = int.from_bytes(made[second_exif - 8 : second_exif - 6], "big") - 8
    blanked = _tiff_without_location(made[second_exif : second_exif + length])
    assert blanked is not None and len(blanked) == length
    original = made[:second_exif] + blanked + made[second_exif + length :]
    assert located(original)
    stripped = without_location(original, "MPO")
    assert stripped is not None and not located(stripped) and len(stripped) < len(original)
    with PILImage.open(io.BytesIO(stripped)) as picture:
        assert picture.format == "MPO" and picture.n_frames == 2
        picture.seek(1)
        assert picture.size == (80, 60) and not picture.getexif().get_ifd(0x8825)


def test_a_zoomed_viewer_gets_the_original_where_browsers_can_show_it(
    client, owner, stranger, friend, upload, settings
):
    """Issue 30: zooming a 6000x4000 photo enlarged its 2048-px preview. The viewer names the original
    (`?full=1`) for a zoom where it has more pixels and a browser can show it; others get it without
    its position, as any other way to the original; a HEIC stays a JPEG preview."""
    from gallery import albums
    from gallery.services import image_set_visibility

    settings.PREVIEW_SIZE = 256
    original = images.camera_jpeg(seed=5, size=(800, 600))
    image = upload(owner, original, "big.jpg").image
    heic = upload(owner, images.heic(320, 240, seed=8), "IMG_0008.HEIC").image
    image_set_visibility(image=image, is_public=True)
    client.force_login(owner)
    page = client.get(reverse("gallery:image_detail", args=[image.pk])).content.decode()
    full = reverse("gallery:image_file", args=[image.pk]) + "?full=1"
    assert f'data-original="{full}"' in page
    assert b"".join(client.get(full).streaming_content) == original
    heic_file = reverse("gallery:image_file", args=[heic.pk])
    assert "data-original" not in client.get(reverse("gallery:image_detail", args=[heic.pk])).content.decode()
    with PILImage.open(io.BytesIO(b"".join(client.get(heic_file + "?full=1").streaming_content))) as shown:
        assert shown.format == "JPEG" and shown.size == (256, 192)
    small = upload(owner, images.jpeg(200, 150, seed=6), "small.jpg").image  # the preview is the original
    assert "data-original" not in client.get(reverse("gallery:image_detail", args=[small.pk])).content.decode()

    client.force_login(stranger)  # a public photo: the original, but not where it was taken
    with PILImage.open(io.BytesIO(b"".join(client.get(full).streaming_content))) as theirs:
        assert theirs.size == (800, 600) and not theirs.getexif().get_ifd(0x8825)
    album = albums.album_create(owner=owner, name="Big")
    albums.album_add_images(album=album, image_ids=[image.pk])
    albums.album_share_with(album=album, username=friend.username)
    client.force_login(friend)
    in_album = reverse("gallery:album_photo_file", args=[album.pk, image.pk]) + "?full=1"
    assert (
        f'data-original="{in_album}"'
        in client.get(reverse("gallery:album_photo", args=[album.pk, image.pk])).content.decode()
    )
    with PILImage.open(io.BytesIO(b"".join(client.get(in_album).streaming_content))) as shared:
        assert shared.size == (800, 600) and not shared.getexif().get_ifd(0x8825)
