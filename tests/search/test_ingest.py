"""The pipeline, on real (tiny) SAM and CLIP models built by the production loading code."""

import numpy as np
import pytest

from gallery.models import Image, Region
from gallery.services import image_reprocess
from search.index import get_index
from search.ingest import image_process, images_requeue_waiting_for_models, objects_find
from search.vision.registry import reset_models, weights_missing
from tests import images


def regions_of(image_id: int) -> list[Region]:
    return list(Region.objects.filter(image_id=image_id).order_by("kind", "x1"))


def test_an_upload_becomes_ready_with_one_global_region_and_unit_vectors(owner, upload):
    outcome = upload(owner, images.png(160, 120))
    image = Image.objects.get(pk=outcome.image.pk)
    assert (image.status, image.progress, image.attempts, image.error) == ("ready", 100, 1, "")
    regions = regions_of(image.pk)
    global_regions = [r for r in regions if r.kind == "global"]
    assert len(global_regions) == 1 and global_regions[0].box == [0, 0, 160, 120]
    for region in regions:
        assert region.embedding_model == "imgsearch-tiny/random" and region.embedding_dim == 64
        assert np.linalg.norm(region.vector) == pytest.approx(1.0, abs=2e-3)
        assert 0 <= region.x1 < region.x2 <= 160 and 0 <= region.y1 < region.y2 <= 120


def test_sam_object_boxes_are_in_original_pixels_when_sam_sees_a_downscaled_copy(owner, upload, settings):
    settings.SAM_MAX_SIDE = 64  # SAM works on a 64x48 copy of this 320x240 image
    settings.REGION_MIN_AREA_FRACTION = 0.0
    reset_models()
    outcome = upload(owner, images.png(320, 240))
    image = Image.objects.get(pk=outcome.image.pk)
    assert image.status == "ready"
    for region in regions_of(image.pk):
        assert 0 <= region.x1 < region.x2 <= 320 and 0 <= region.y1 < region.y2 <= 240


def test_object_regions_are_the_shapes_in_the_picture(owner, upload, colour_proposer):
    outcome = upload(owner, images.png(160, 120))
    objects = [r.box for r in regions_of(outcome.image.pk) if r.kind == "object"]
    assert objects == [[20, 20, 53, 60], [80, 60, 140, 100]]


def test_clip_sees_a_region_and_a_box_drawn_on_it_with_the_same_margin_of_surroundings(
    owner, upload, colour_proposer, settings
):
    """REGION_CROP_CONTEXT: the stored box stays tight; the vector is of the box grown by a share of
    its size, and a person's box drawn on the region searches with that same vector."""
    from search.queries import BoxQuery
    from search.vision.registry import get_clip

    settings.REGION_CROP_CONTEXT = 0.25
    outcome = upload(owner, images.png(160, 120))
    region = next(r for r in regions_of(outcome.image.pk) if r.kind == "object")
    assert region.box == [20, 20, 53, 60]
    picture = images.scene(160, 120)
    grown, tight = get_clip().embed_images([picture.crop((12, 10, 61, 70)), picture.crop((20, 20, 53, 60))])
    assert np.allclose(region.vector, grown, atol=2e-3) and not np.allclose(region.vector, tight, atol=2e-3)
    drawn = BoxQuery(outcome.image.pk, tuple(region.box)).vector(owner).vector
    assert np.allclose(drawn, grown, atol=1e-5)


def test_a_margin_stops_at_the_pictures_edges_and_a_share_over_one_is_refused_in_plain_words():
    import os
    import subprocess
    import sys

    from search.vision.proposers import with_context

    assert with_context((0, 5, 10, 15), 12, 20, 0.5) == (0, 0, 12, 20)
    assert with_context((4, 4, 8, 8), 12, 12, 0.0) == (4, 4, 8, 8)
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsearch.settings", "REGION_CROP_CONTEXT": "2"}
    command = [sys.executable, "-c", "import django; django.setup()"]
    run = subprocess.run(command, check=False, env=environment, capture_output=True, text=True)
    assert run.returncode != 0 and "REGION_CROP_CONTEXT=2.0 is a share of a box's size, from 0 to 1." in run.stderr


def test_boxes_follow_exif_orientation(owner, upload, colour_proposer):
    # Stored 160x120 with "rotate 90 degrees clockwise": people (and boxes) see it 120x160.
    outcome = upload(owner, images.jpeg(160, 120, orientation=6), name="rotated.jpg")
    image = Image.objects.get(pk=outcome.image.pk)
    assert (image.width, image.height) == (120, 160)
    regions = regions_of(image.pk)
    assert [r.box for r in regions if r.kind == "global"] == [[0, 0, 120, 160]]
    # The 20..53 x 20..60 rectangle of the stored pixels lands at x 60..100, y 20..53 after the turn.
    objects = [r.box for r in regions if r.kind == "object"]
    assert any(
        abs(box[0] - 60) <= 2 and abs(box[1] - 20) <= 2 and abs(box[2] - 100) <= 2 and abs(box[3] - 53) <= 2
        for box in objects
    ), objects


@pytest.mark.parametrize(
    "data",
    [
        images.cmyk_jpeg(),
        images.png_16bit(),
        images.palette_png(transparent=True),
        images.rgba_png(),
        images.animated("GIF"),
        images.png(1, 300),
    ],
    ids=["cmyk", "16-bit", "palette", "alpha", "animated", "1xN"],
)
def test_unusual_modes_are_processed(owner, upload, data):
    outcome = upload(owner, data)
    image = Image.objects.get(pk=outcome.image.pk)
    assert image.status == "ready", image.error


def test_sixteen_bit_images_keep_their_tones():
    import io

    from PIL import Image as PILImage

    from gallery.imaging import to_rgb

    rgb = np.asarray(to_rgb(PILImage.open(io.BytesIO(images.png_16bit()))))
    assert rgb.min() < 10 and rgb.max() > 245  # a plain convert("RGB") would clip it to white


def test_a_duplicate_task_does_nothing_and_processing_again_replaces_the_regions(
    owner, upload, colour_proposer, django_capture_on_commit_callbacks
):
    outcome = upload(owner, images.png())
    first = sorted(r.box for r in regions_of(outcome.image.pk))
    first_ids = set(Region.objects.values_list("pk", flat=True))
    # A second task for the same image (a broker redelivery, a recovered duplicate) finds it done.
    assert image_process(image_id=outcome.image.pk) == "skipped"
    assert set(Region.objects.values_list("pk", flat=True)) == first_ids
    with django_capture_on_commit_callbacks(execute=True):
        image_reprocess(image=Image.objects.get(pk=outcome.image.pk))
    assert sorted(r.box for r in regions_of(outcome.image.pk)) == first
    # The change feed tells the index to drop the old vectors and take the new ones.
    second_ids = set(Region.objects.values_list("pk", flat=True))
    assert second_ids.isdisjoint(first_ids)
    assert set(get_index().current().ids().tolist()) == second_ids
    assert Image.objects.get(pk=outcome.image.pk).attempts == 1  # a person's retry starts a fresh count


def test_a_corrupt_stored_file_fails_with_a_reason_and_the_next_image_still_works(owner, upload, settings):
    bad = upload(owner, images.png(seed=1), name="bad.png")
    (settings.MEDIA_ROOT / bad.image.file).write_bytes(b"garbage now")
    image_reprocess(image=bad.image)  # queued (the task itself is run by hand below)
    assert image_process(image_id=bad.image.pk) == "failed"
    failed = Image.objects.get(pk=bad.image.pk)
    assert failed.status == "failed" and "could not be decoded" in failed.error
    # Its earlier regions are still there: a failed retry loses nothing.
    assert Region.objects.filter(image=failed).exists()

    good = upload(owner, images.png(seed=2), name="good.png")
    assert Image.objects.get(pk=good.image.pk).status == "ready"


def test_a_missing_stored_file_says_to_upload_again(owner, upload, settings):
    outcome = upload(owner, images.png())
    (settings.MEDIA_ROOT / outcome.image.file).unlink()
    image_reprocess(image=outcome.image)
    assert image_process(image_id=outcome.image.pk) == "failed"
    assert "upload it again" in Image.objects.get(pk=outcome.image.pk).error


@pytest.fixture
def without_weights(settings, tmp_path):
    """Apply settings that point the models at weights that are not there; restore fresh models after."""

    def apply(**overrides):
        for name, value in overrides.items():
            setattr(settings, name, value)
        reset_models()

    yield apply
    reset_models()


def test_missing_sam_weights_leave_the_photo_searchable_and_its_objects_waiting_in_plain_words(
    owner, upload, without_weights, tmp_path
):
    without_weights(SAM_MODEL_TYPE="vit_b", SAM_CHECKPOINT=str(tmp_path / "nowhere" / "sam_vit_b_01ec64.pth"))
    outcome = upload(owner, images.png())
    image = Image.objects.get(pk=outcome.image.pk)
    # The first stage needs CLIP only: the photo is searchable as a whole; its objects wait.
    assert (image.status, image.objects_status, image.waiting_for_models) == ("ready", "failed", True)
    assert [region.kind for region in regions_of(image.pk)] == ["global"]
    assert image.status_label == "Searchable · no objects"
    # The owner is told nothing is needed from them; server paths and commands are for staff.
    assert "processed by itself" in image.error
    assert "fetch_models" not in image.error and str(tmp_path) not in image.error
    assert "SAM_CHECKPOINT" in weights_missing()["sam"]


def test_missing_clip_weights_fail_fast_offline(owner, upload, without_weights, tmp_path):
    without_weights(
        CLIP_MODEL="ViT-B-32",
        CLIP_PRETRAINED="laion2b_s34b_b79k",
        MODEL_CACHE_DIR=tmp_path / "models",
        REGION_PROPOSER="colour",
    )
    outcome = upload(owner, images.png())
    image = Image.objects.get(pk=outcome.image.pk)
    assert image.status == "failed" and image.waiting_for_models
    assert "CLIP_CHECKPOINT" in weights_missing()["clip"] and "sam" not in weights_missing()


def test_images_that_waited_for_weights_are_processed_once_the_weights_appear(
    owner, upload, without_weights, tmp_path, settings, django_capture_on_commit_callbacks
):
    checkpoint = tmp_path / "models" / "clip-tiny.pt"
    without_weights(CLIP_CHECKPOINT=str(checkpoint))
    waiting = [upload(owner, images.png(seed=seed)).image.pk for seed in (1, 2)]
    other = upload(owner, images.png(seed=3)).image
    Image.objects.filter(pk=other.pk).update(waiting_for_models=False, error="Something else went wrong.")
    assert set(Image.objects.filter(waiting_for_models=True).values_list("pk", flat=True)) == set(waiting)
    assert images_requeue_waiting_for_models() == []  # still missing: nothing moves

    # The weights arrive (fetch_models finished, or someone copied the file in).
    import open_clip
    import torch

    checkpoint.parent.mkdir(parents=True)
    torch.save(open_clip.create_model(settings.CLIP_MODEL).state_dict(), checkpoint)
    with django_capture_on_commit_callbacks(execute=True):
        assert sorted(images_requeue_waiting_for_models()) == sorted(waiting)
    assert set(Image.objects.filter(pk__in=waiting).values_list("status", "waiting_for_models", "error")) == {
        ("ready", False, "")
    }
    assert Image.objects.get(pk=other.pk).status == "failed"  # failed for another reason: left alone


def test_a_failed_image_can_be_retried(owner, upload, settings, tmp_path, django_capture_on_commit_callbacks):

    settings.SAM_MODEL_TYPE = "vit_b"
    settings.SAM_CHECKPOINT = str(tmp_path / "missing.pth")
    reset_models()
    outcome = upload(owner, images.png())
    image = Image.objects.get(pk=outcome.image.pk)
    assert (image.status, image.objects_status) == ("ready", "failed")
    searchable_since = image.processed_at

    settings.SAM_MODEL_TYPE = "tiny"
    settings.SAM_CHECKPOINT = ""
    reset_models()
    with django_capture_on_commit_callbacks(execute=True):
        image_reprocess(image=image)
    image = Image.objects.get(pk=outcome.image.pk)
    assert (image.status, image.objects_status, image.attempts, image.error) == ("ready", "found", 1, "")
    # Only the stage that failed ran again: the photo stayed searchable throughout.
    assert image.processed_at == searchable_since


def test_an_image_deleted_before_its_task_runs_is_skipped(owner, upload):
    from gallery.services import image_delete

    outcome = upload(owner, images.png())
    image_delete(image=Image.objects.get(pk=outcome.image.pk))
    assert image_process(image_id=outcome.image.pk) == "skipped"
    assert not Region.objects.exists()


def test_a_batching_worker_takes_the_next_pending_images_with_the_same_results(
    owner, stranger, upload, settings, colour_proposer, django_capture_on_commit_callbacks
):
    scenes = [images.png(seed=seed) for seed in (31, 32, 33)]
    one_by_one = [upload(stranger, data, name=f"{index}.png").image for index, data in enumerate(scenes)]
    settings.PROCESSING_BATCH_IMAGES = 3
    from gallery.services import image_create
    from tests.conftest import upload_file

    with django_capture_on_commit_callbacks(execute=False):  # stored and pending; no task runs yet
        queued = [
            image_create(owner=owner, upload=upload_file(data, f"{index}.png")).image
            for index, data in enumerate(scenes)
        ]
    with django_capture_on_commit_callbacks(execute=False):
        # The first stage takes every waiting image in one batch; the second, PROCESSING_BATCH_IMAGES:
        # its own image, then the others, oldest first.
        assert image_process(image_id=queued[1].pk) == "ready"
        assert [Image.objects.get(pk=image.pk).objects_status for image in queued] == ["waiting"] * 3
        assert objects_find(image_id=queued[1].pk) == "found"
    assert [Image.objects.get(pk=image.pk).status for image in queued] == ["ready"] * 3
    assert [Image.objects.get(pk=image.pk).objects_status for image in queued] == ["found"] * 3
    assert [image_process(image_id=image.pk) for image in queued] == ["skipped"] * 3  # their own tasks
    assert [objects_find(image_id=image.pk) for image in queued] == ["skipped"] * 3
    for alone, batched in zip(one_by_one, queued, strict=True):
        assert sorted(r.box for r in regions_of(batched.pk)) == sorted(r.box for r in regions_of(alone.pk))
        assert Image.objects.get(pk=batched.pk).attempts == 1
