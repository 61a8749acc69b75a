"""A search by a piece of a photo finds the photo it was cut from first (search.ranking.source_first,
search.duplicates.locate), with the demo profile: our CLIP ranks every photo of the same kind of
thing alike, so which one the piece came from is the pixels' to tell."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from gallery.models import Image
from search.queries import ImageQuery
from search.query import search
from search.vision.pixels import locate
from search.vision.proposers import box_iou
from search.vision.training import demo


def png(picture: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(picture: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def scene(seed: int):
    return demo.scene(640, 480, np.random.default_rng(seed), count=3)


def with_margin(box, picture, margin: int = 12) -> tuple[int, int, int, int]:
    """The box a person would cut around a thing: a little of what is around it too."""
    x1, y1, x2, y2 = box
    return max(0, x1 - margin), max(0, y1 - margin), min(picture.width, x2 + margin), min(picture.height, y2 + margin)


def test_locate_finds_a_crop_where_it_was_cut_and_nowhere_else():
    picture, shapes = scene(1)
    box = shapes[0].box
    part = picture.crop(box)
    assert locate(part, picture) == list(box)
    assert locate(PILImage.open(io.BytesIO(jpeg(part))), picture) == list(box)  # re-encoded
    assert locate(part.resize((part.width * 3 // 2, part.height * 3 // 2)), picture) is None  # resized: left to CLIP
    other, _ = scene(2)
    assert locate(part, other) is None
    assert locate(PILImage.new("RGB", (40, 40), (200, 30, 30)), picture) is None  # flat: matches any flat patch


@pytest.fixture
def scenes(owner, stranger, upload, demo_profile):
    made = {}
    for seed in range(1, 7):
        picture, shapes = scene(seed)
        made[seed] = (upload(owner, png(picture), f"scene-{seed}.png").image, picture, shapes)
    stranger_copy = upload(stranger, png(scene(3)[0].resize((600, 450))), "stranger-copy.png").image
    assert Image.objects.filter(status="ready").count() == 7
    return made, stranger_copy


def test_a_crop_finds_the_photo_it_was_cut_from_first_boxed_where_it_lies(owner, scenes, settings):
    made, stranger_copy = scenes
    image, picture, shapes = made[3]
    for placed in shapes:
        box = with_margin(placed.box, picture)
        results = search(user=owner, query=ImageQuery(png(picture.crop(box))), min_score=-1).results
        first = results[0]
        assert (first.image.pk, first.kind) == (image.pk, "source")
        assert box_iou(tuple(first.box), box) > 0.95
        assert [r.kind for r in results[1:]].count("source") == 0
        assert stranger_copy.pk not in {r.image.pk for r in results}  # another person's private photo: never


def test_without_the_check_the_order_is_clips(owner, scenes, settings):
    made, _ = scenes
    _, picture, shapes = made[3]
    settings.SOURCE_CHECKED = 0
    results = search(
        user=owner, query=ImageQuery(png(picture.crop(with_margin(shapes[0].box, picture)))), min_score=-1
    ).results
    assert "source" not in {r.kind for r in results}
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_a_crop_of_a_large_photo_is_found_on_a_smaller_decode_and_boxed_in_its_pixels(owner, upload, demo_profile):
    """A large JPEG is read at half size or less (libjpeg's DCT scaling) and searched shrunk; the box
    still comes back in the photo's own pixels."""
    from gallery import storage

    picture, shapes = scene(4)
    large = picture.resize((2560, 1920), PILImage.Resampling.BICUBIC)
    image = upload(owner, jpeg(large), "large.jpg").image
    upload(owner, png(scene(5)[0]), "other.png")
    stored = storage.read_rgb(image.file)
    assert storage.read_rgb(image.file, at_least=1280).size == (1280, 960)
    assert storage.read_rgb(image.file, at_least=1281).size == (2560, 1920)  # the long side stays at least that
    x1, y1, x2, y2 = (4 * v for v in with_margin(shapes[0].box, picture))
    results = search(user=owner, query=ImageQuery(png(stored.crop((x1, y1, x2, y2)))), min_score=-1).results
    assert (results[0].image.pk, results[0].kind) == (image.pk, "source")
    assert box_iou(tuple(results[0].box), (x1, y1, x2, y2)) > 0.95
