"""Near-duplicates (issue 14) with the demo profile: a re-encode, a rescale and a crop of one photo
form a group; other photos and other people's copies stay out; the image page tells copies from
similar shots; the review page selects all but the best; old photos get their hash by the sweep."""

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image as PILImage
from rest_framework.test import APIClient

from gallery import storage
from gallery.models import Image
from search.duplicates import duplicate_groups, hashes_backfill, is_near_duplicate, pixel_checks_backfill
from search.models import PixelVerdict
from search.vision.pixels import hash_distances, perceptual_hash, same_picture, signed_hash
from search.vision.training import demo


def encode(picture: PILImage.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **params)
    return buffer.getvalue()


def scene(seed: int) -> PILImage.Image:
    picture, _ = demo.scene(640, 480, np.random.default_rng(seed), count=3)
    return picture


@pytest.fixture
def copies(owner, upload, demo_profile):
    """owner: a photo, its re-encode, rescale and crop, and two other photos."""
    original = scene(5)
    made = {
        "original": upload(owner, encode(original), "original.png").image,
        "re-encode": upload(owner, encode(original, "JPEG", quality=70), "re-encode.jpg").image,
        "rescale": upload(owner, encode(original.resize((320, 240))), "rescale.png").image,
        "crop": upload(owner, encode(original.crop((16, 12, 624, 468))), "crop.png").image,
        "other": upload(owner, encode(scene(6)), "other.png").image,
        "another": upload(owner, encode(scene(7)), "another.png").image,
    }
    for image in made.values():
        image.refresh_from_db()
        assert image.status == "ready"
    return made


def names(group) -> list[str]:
    return [image.original_name for image in group.images]


def test_a_photos_copies_form_one_group_with_the_largest_to_keep(owner, copies):
    groups = duplicate_groups(owner)
    assert [names(group) for group in groups] == [["original.png", "re-encode.jpg", "crop.png", "rescale.png"]]
    assert groups[0].keep == copies["original"]


def test_clip_must_agree_with_the_hash(owner, copies, settings):
    settings.NEAR_DUPLICATE_SIMILARITY = 1.01  # no pair of vectors is that close
    assert duplicate_groups(owner) == []


def test_the_pipeline_stores_the_hash_of_the_pixels(copies):
    image = copies["original"]
    assert image.perceptual_hash == signed_hash(storage.read_rgb(image.file))
    assert hash_distances([image.perceptual_hash], [copies["rescale"].perceptual_hash])[0, 0] <= 2
    assert hash_distances([image.perceptual_hash], [copies["other"].perceptual_hash])[0, 0] > 12


def test_hash_distances_count_differing_bits_whatever_the_sign():
    a, b = perceptual_hash(scene(1)), perceptual_hash(scene(2))
    signed = np.array([a, b], dtype=np.uint64).view(np.int64)
    assert hash_distances(signed, signed).tolist() == [[0, bin(a ^ b).count("1")], [bin(a ^ b).count("1"), 0]]
    assert hash_distances([-1], [0])[0, 0] == 64


def test_another_persons_copy_is_never_grouped_or_shown(owner, stranger, copies, upload, client):
    theirs = upload(stranger, encode(scene(5), "JPEG", quality=80), "their-copy.jpg").image
    assert all("their-copy.jpg" not in names(group) for group in duplicate_groups(owner))
    assert duplicate_groups(stranger) == []
    Image.objects.filter(pk=copies["original"].pk).update(is_public=True)
    client.force_login(stranger)
    page = client.get(reverse("gallery:image_detail", args=[copies["original"].pk])).content.decode()
    assert "Near-duplicates of this photo" not in page and "re-encode.jpg" not in page  # not their photo
    page = client.get(reverse("gallery:image_detail", args=[theirs.pk])).content.decode()
    assert "original.png" not in page and "Near-duplicates" not in page
    page = client.get(reverse("search:duplicates")).content.decode()
    assert "No near-duplicates" in page and "original.png" not in page
    api = APIClient()
    api.force_authenticate(stranger)
    assert api.get(reverse("api:duplicates")).json() == []
    assert APIClient().get(reverse("api:duplicates")).status_code in (401, 403)


def test_the_image_page_tells_copies_from_similar_photos(owner, copies, client, settings):
    client.force_login(owner)
    url = reverse("gallery:image_detail", args=[copies["original"].pk])
    page = client.get(url).content.decode()
    duplicates = page.split("Near-duplicates of this photo")[1]
    assert all(name in duplicates for name in ("re-encode.jpg", "rescale.png", "crop.png"))
    assert "other.png" not in page
    # A crop moves the hash by a few bits: with a stricter hash it is a similar photo, not a copy.
    settings.NEAR_DUPLICATE_HASH_BITS = 3
    page = client.get(url).content.decode()
    similar = page.split("Similar, not identical")[1]
    assert (
        "crop.png" in similar and "crop.png" not in page.split("Similar, not identical")[0].split("Near-duplicates")[-1]
    )


def test_the_review_page_selects_all_but_the_best_and_the_api_agrees(owner, copies, client):
    client.force_login(owner)
    page = client.get(reverse("search:duplicates")).content.decode()
    checked = {
        copies[name].pk: f'value="{copies[name].pk}" form="bulk" data-pick checked' in page
        for name in ("original", "re-encode", "rescale", "crop")
    }
    assert checked == {
        copies["original"].pk: False,
        copies["re-encode"].pk: True,
        copies["rescale"].pk: True,
        copies["crop"].pk: True,
    }
    api = APIClient()
    api.force_authenticate(owner)
    body = api.get(reverse("api:duplicates")).json()
    assert len(body) == 1 and body[0]["keep"] == copies["original"].pk
    assert [image["original_name"] for image in body[0]["images"]] == [
        "original.png",
        "re-encode.jpg",
        "crop.png",
        "rescale.png",
    ]
    assert body[0]["images"][0]["thumbnail_url"].endswith(f"/api/images/{copies['original'].pk}/thumbnail/")


def test_photos_processed_before_hashes_get_theirs_from_the_sweep(copies):
    expected = {image.pk: image.perceptual_hash for image in copies.values()}
    Image.objects.update(perceptual_hash=None)
    assert hashes_backfill(limit=4) == 4
    assert hashes_backfill(limit=50) == 2
    assert dict(Image.objects.values_list("pk", "perceptual_hash")) == expected


def test_hash_neighbours_finds_exactly_the_pairs_within_the_bits():
    from search.vision.pixels import hash_neighbours

    rng = np.random.default_rng(3)
    hashes = rng.integers(-(2**63), 2**63 - 1, 300, dtype=np.int64)
    hashes[10] = hashes[20] ^ 0b1011  # 3 bits apart
    hashes[30] = hashes[40] ^ (2**63 - 1)  # 63 bits apart
    first, second = hash_neighbours(hashes, 12)
    distances = hash_distances(hashes, hashes)
    expected = {(i, j) for i, j in zip(*np.nonzero(distances <= 12), strict=True) if i < j}
    assert set(zip(first.tolist(), second.tolist(), strict=True)) == expected and (10, 20) in expected


def deep_crop(picture: PILImage.Image) -> PILImage.Image:
    """70% of each side, then halved: the low frequencies the hash keeps move too far."""
    width, height = picture.size
    box = (int(0.1 * width), int(0.2 * height), int(0.8 * width), int(0.9 * height))
    return picture.crop(box).resize(((box[2] - box[0]) // 2, (box[3] - box[1]) // 2), PILImage.Resampling.LANCZOS)


def another_shot(picture: PILImage.Image) -> PILImage.Image:
    """The same place a moment later: the same background, with three small things come into view."""
    from PIL import ImageDraw

    shot = picture.copy()
    draw = ImageDraw.Draw(shot)
    for left, top, colour in ((60, 60, (250, 250, 250)), (300, 380, (10, 10, 10)), (560, 200, (250, 250, 250))):
        draw.rectangle((left, top, left + 30, top + 30), fill=colour)
    return shot


def test_the_pixel_check_registers_crops_and_refuses_other_shots():
    original = scene(5)
    crop = deep_crop(original)
    assert hash_distances([perceptual_hash(original)], [perceptual_hash(crop)])[0, 0] > 12  # the hash misses it
    assert same_picture(original, crop) is True and same_picture(crop, original) is True
    assert same_picture(original, _jpeg(original.resize((200, 150)), 40)) is True
    assert same_picture(original, another_shot(original)) is False
    assert same_picture(original, scene(6)) is not True
    assert same_picture(original, original.rotate(90, expand=True)) is None  # turned: not a crop, no verdict
    assert same_picture(original, original.resize((20, 15))) is None  # too small to register


def _jpeg(picture: PILImage.Image, quality: int) -> PILImage.Image:
    return PILImage.open(io.BytesIO(encode(picture, "JPEG", quality=quality))).convert("RGB")


def test_the_sweep_finds_the_crops_the_hash_misses_for_their_owner_only(
    owner, stranger, copies, upload, client, settings
):
    cropped = upload(owner, encode(deep_crop(scene(5))), "deep-crop.png").image
    theirs = upload(stranger, encode(deep_crop(scene(5)), "JPEG", quality=90), "their-crop.jpg").image
    cropped.refresh_from_db()
    assert cropped.status == "ready"
    assert (
        hash_distances([copies["original"].perceptual_hash], [cropped.perceptual_hash])[0, 0]
        > settings.NEAR_DUPLICATE_HASH_BITS
    )
    assert all("deep-crop.png" not in names(group) for group in duplicate_groups(owner))  # it leaves the group

    client.force_login(owner)
    assert 'data-pixel-checks-waiting="7"' in client.get(reverse("search:duplicates")).content.decode()
    assert pixel_checks_backfill(limit=50) == 8
    assert pixel_checks_backfill(limit=50) == 0  # each photo once
    assert "data-pixel-checks-waiting" not in client.get(reverse("search:duplicates")).content.decode()
    groups = duplicate_groups(owner)
    assert len(groups) == 1 and "deep-crop.png" in names(groups[0]) and groups[0].keep == copies["original"]
    page = client.get(reverse("gallery:image_detail", args=[copies["original"].pk])).content.decode()
    assert "deep-crop.png" in page.split("Near-duplicates of this photo")[1].split("Similar, not identical")[0]
    # Only an owner's own photos are ever compared: the stranger's crop of the same picture is theirs alone.
    mixed = PixelVerdict.objects.filter(first__owner=owner, second__owner=stranger) | PixelVerdict.objects.filter(
        first__owner=stranger, second__owner=owner
    )
    assert not mixed.exists() and PixelVerdict.objects.filter(same=True, first__owner=owner).exists()
    assert duplicate_groups(stranger) == [] and theirs.pk not in {i.pk for g in groups for i in g.images}


def test_the_pixel_check_parts_another_shot_that_hash_and_clip_take_for_a_copy(owner, upload, demo_profile):
    from search.duplicates import _global_vectors

    first = upload(owner, encode(scene(5)), "first.png").image
    second = upload(owner, encode(another_shot(scene(5))), "second.png").image
    first.refresh_from_db()
    second.refresh_from_db()
    vectors = _global_vectors([first.pk, second.pk])
    bits = hash_distances([first.perceptual_hash], [second.perceptual_hash])[0, 0]
    assert is_near_duplicate(float(vectors[first.pk] @ vectors[second.pk]), bits)  # both take it for a copy
    assert [names(group) for group in duplicate_groups(owner)] == [["first.png", "second.png"]]
    assert pixel_checks_backfill() == 2
    assert PixelVerdict.objects.get().same is False
    assert duplicate_groups(owner) == []


def test_check_duplicates_works_through_the_backlog_and_can_start_again(owner, copies, upload):
    from django.core.management import call_command

    upload(owner, encode(deep_crop(scene(5))), "deep-crop.png")
    out = io.StringIO()
    call_command("check_duplicates", stdout=out)
    assert "Pixel-checked 7 photo(s); " in out.getvalue() and "wait for the index" not in out.getvalue()
    assert PixelVerdict.objects.filter(same=True).exists()
    assert any("deep-crop.png" in names(group) for group in duplicate_groups(owner))
    out = io.StringIO()
    call_command("check_duplicates", stdout=out)
    assert "Pixel-checked 0 photo(s)" in out.getvalue()  # nothing left to do
    same, before = PixelVerdict.objects.filter(same=True).count(), PixelVerdict.objects.count()
    out = io.StringIO()
    call_command("check_duplicates", "--again", stdout=out)
    assert f"Forgot {before} verdict(s)." in out.getvalue()
    assert "Pixel-checked 7 photo(s)" in out.getvalue() and PixelVerdict.objects.filter(same=True).count() == same


def test_check_duplicates_says_so_when_there_is_no_index_yet(db, settings, tmp_path):
    from django.core.management import CommandError, call_command

    from search.index import reset_index

    settings.INDEX_DIR = tmp_path / "no-index-here"  # nothing ever published there,
    settings.INDEX_INLINE_WRITER = False  # and no indexer running
    reset_index()
    with pytest.raises(CommandError, match="has not been built yet"):
        call_command("check_duplicates")


def test_a_curator_sees_the_verdicts_in_the_admin_and_one_turned_over_holds(owner, copies, upload, admin_client):
    upload(owner, encode(deep_crop(scene(5))), "deep-crop.png")
    pixel_checks_backfill(limit=50)
    page = admin_client.get(reverse("admin:search_pixelverdict_changelist"), {"same__exact": "1"}).content.decode()
    assert "deep-crop.png" in page
    # It is judged the same picture as each copy: turned over (the changelist's checkbox) for all of them,
    mine = PixelVerdict.objects.filter(same=True, second__original_name="deep-crop.png")
    assert mine.count() >= 2
    mine.update(same=False)
    assert pixel_checks_backfill(limit=50) == 0  # never judged again,
    assert all("deep-crop.png" not in names(group) for group in duplicate_groups(owner))  # it leaves the group


@pytest.mark.django_db(transaction=True)
def test_a_photo_deleted_while_the_sweep_compares_it_costs_nothing_but_its_verdict(owner, copies, monkeypatch):
    """Someone deletes a photo while the sweep's pixel check holds it: the verdict naming it cannot be
    stored (its foreign key fails on commit), and the sweep goes on with the rest instead of failing."""
    import threading

    from django.db import connection

    from gallery.services import image_delete
    from search import duplicates
    from search.models import PixelCheck

    real_same_picture, deleted = duplicates.same_picture, []

    def deleted_meanwhile(first, second):
        if not deleted:  # the owner, in another request (another connection), deletes the rescale

            def delete() -> None:
                image_delete(image=Image.objects.get(pk=copies["rescale"].pk))
                connection.close()

            thread = threading.Thread(target=delete)
            thread.start()
            thread.join()
            deleted.append(copies["rescale"].pk)
        return real_same_picture(first, second)

    monkeypatch.setattr(duplicates, "same_picture", deleted_meanwhile)
    assert pixel_checks_backfill(limit=50) == 6  # the rescale too: it was listed before it went
    assert deleted and not Image.objects.filter(pk=deleted[0]).exists()
    assert (
        not PixelVerdict.objects.filter(first_id=deleted[0]).exists()
        and not PixelVerdict.objects.filter(second_id=deleted[0]).exists()
    )
    assert set(PixelCheck.objects.values_list("image_id", flat=True)) == {
        i.pk for k, i in copies.items() if k != "rescale"
    }
    assert PixelVerdict.objects.filter(same=True).exists()


def test_a_photo_whose_file_is_gone_is_marked_checked_and_the_others_still_compared(owner, copies):
    from search.models import PixelCheck

    storage.delete(copies["original"].file)
    assert pixel_checks_backfill(limit=50) == 6
    assert PixelCheck.objects.count() == 6  # not tried again each sweep
    assert (
        PixelVerdict.objects.filter(same=True)
        .exclude(first=copies["original"])
        .exclude(second=copies["original"])
        .exists()
    )


def centre_crop(picture: PILImage.Image, width: float = 0.75, height: float = 0.8) -> PILImage.Image:
    keep = (int(picture.width * width), int(picture.height * height))
    left, top = (picture.width - keep[0]) // 2, (picture.height - keep[1]) // 2
    return picture.crop((left, top, left + keep[0], top + keep[1]))


def test_a_centre_crop_of_a_smooth_picture_joins_its_group(owner, upload, demo_profile, settings):
    """Issue 30, bug 7: a 75% x 80% centre crop was never grouped with its photo: a smooth picture has
    too few corners to register, so the pixel check gave no verdict, and the crop moves the hash."""
    from tests import images

    original = images.scene(640, 480, seed=3)
    photo = upload(owner, encode(original), "photo.png").image
    crop = upload(owner, encode(centre_crop(original), "JPEG", quality=85), "crop.jpg").image
    other = upload(owner, encode(images.scene(640, 480, seed=4)), "other.png").image
    photo.refresh_from_db()
    crop.refresh_from_db()
    assert same_picture(original, centre_crop(original)) is None  # nothing to register by
    assert hash_distances([photo.perceptual_hash], [crop.perceptual_hash])[0, 0] > settings.NEAR_DUPLICATE_HASH_BITS
    pixel_checks_backfill(limit=10)
    assert [names(group) for group in duplicate_groups(owner)] == [["photo.png", "crop.jpg"]]
    assert not PixelVerdict.objects.filter(same=True, first=other).exists()
    assert not PixelVerdict.objects.filter(same=True, second=other).exists()


@pytest.mark.parametrize("blur", [8, 16])
def test_smooth_held_out_photographs_are_found_in_their_crops_and_nowhere_else(blur):
    """cut_from, the pixel check for pictures too smooth to register, on photographs from other
    packages' sample data (bench/heldout.py), blurred until keypoints fail: each centre crop (a JPEG
    re-encode) is found in its photo, none in another photo, and another shot (two small things come
    into view) is never taken for the same picture."""
    from PIL import ImageDraw, ImageFilter

    from bench import heldout
    from search.vision.pixels import cut_from

    def another_shot(picture: PILImage.Image) -> PILImage.Image:
        shot = picture.copy()
        draw, side = ImageDraw.Draw(shot), picture.width // 20
        for fx, fy, colour in ((0.35, 0.3, (250, 250, 250)), (0.55, 0.6, (10, 10, 10))):
            left, top = int(fx * picture.width), int(fy * picture.height)
            draw.rectangle((left, top, left + side, top + side), fill=colour)
        return shot

    pictures = {
        name: photo.convert("RGB").filter(ImageFilter.GaussianBlur(blur))
        for name, photo in heldout.photographs(heldout.EVALUATION_PHOTOGRAPHS + heldout.TUNING_PHOTOGRAPHS).items()
    }
    unregistered = [name for name, picture in pictures.items() if same_picture(picture, centre_crop(picture)) is None]
    assert len(unregistered) >= 4  # the pictures this way is for
    for name, picture in pictures.items():
        assert cut_from(_jpeg(centre_crop(picture), 80), picture) is True, name
        assert cut_from(_jpeg(centre_crop(another_shot(picture)), 80), picture) is not True, name
        for other_name, other in pictures.items():
            if other_name != name:
                assert cut_from(_jpeg(centre_crop(other), 80), picture) is None, (name, other_name)
