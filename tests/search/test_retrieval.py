"""Retrieval works: the demo CLIP we trained, through upload -> task -> index -> search -> API.

Scenes of two or three coloured shapes, generated with a seed the model never trained on, are
uploaded through the API and processed by the real pipeline. Then we ask for each shape by text,
by a picture of it, and by one of its regions, and measure how often the right image comes first
and how well the returned box covers the true shape. The figures are printed at the end of the test run.
"""

import io
from collections import defaultdict

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from search.vision.proposers import box_iou
from search.vision.training import demo
from tests.conftest import MEASURED, upload_file

SCENES = 16
SCENE_SEED = 2026  # not demo_clip.TRAIN_SEED: these pictures are new to the model
RECALL_AT_1 = 0.8
IOU_SHARE = 0.8


@pytest.fixture
def demo_library(owner, demo_profile, django_capture_on_commit_callbacks):
    rng = np.random.default_rng(SCENE_SEED)
    api = APIClient()
    api.force_authenticate(owner)
    truth = {}
    files = []
    for number in range(SCENES):
        picture, shapes = demo.scene(256, 192, rng, count=2 + number % 2)
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        files.append(upload_file(buffer.getvalue(), f"scene-{number}.png"))
        truth[f"scene-{number}.png"] = shapes
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("api:images"), {"files": files}, format="multipart")
    assert response.status_code == 201
    ids = {item["image"]["original_name"]: item["image"]["id"] for item in response.json()}
    return api, truth, ids


def report(line: str) -> None:
    print(line)
    MEASURED.append("retrieval " + line)


def run(api, payload) -> list[dict]:
    # min_score=-1: this measures ranking; the threshold is tested on its own below.
    fmt = "multipart" if "image" in payload else "json"
    response = api.post(reverse("api:search"), {**payload, "min_score": -1, "page_size": 5}, format=fmt)
    assert response.status_code == 200, response.json()
    return response.json()["results"]


def score(results_by_query, truth, label: str) -> tuple[float, float]:
    """(recall@1 at image level, share of object matches whose box has IoU >= 0.5 with the true shape)."""
    hits, ious = 0, []
    for (colour, shape), results in results_by_query:
        relevant = {
            name for name, shapes in truth.items() if any((s.colour, s.shape) == (colour, shape) for s in shapes)
        }
        top = results[0] if results else None
        if top and top["original_name"] in relevant:
            hits += 1
            if top["kind"] == "object":
                true_box = next(s.box for s in truth[top["original_name"]] if (s.colour, s.shape) == (colour, shape))
                ious.append(box_iou(tuple(top["box"]), true_box))
    recall = hits / len(results_by_query)
    iou_share = float(np.mean([iou >= 0.5 for iou in ious])) if ious else 0.0
    report(
        f"[{label}] queries={len(results_by_query)} recall@1={recall:.2f} object matches={len(ious)} "
        f"IoU>=0.5 in {iou_share:.0%} (mean IoU {np.mean(ious) if ious else 0:.2f})"
    )
    return recall, iou_share


def present_classes(truth) -> list[tuple[str, str]]:
    return sorted({(s.colour, s.shape) for shapes in truth.values() for s in shapes})


@pytest.mark.slow
def test_text_queries_find_the_right_scene_and_box_the_shape(demo_library):
    api, truth, _ = demo_library
    results = [((c, s), run(api, {"text": demo.caption(c, s)})) for c, s in present_classes(truth)]
    recall, iou_share = score(results, truth, "text")
    assert recall >= RECALL_AT_1 and iou_share >= IOU_SHARE


@pytest.mark.slow
def test_image_queries_of_one_shape_find_scenes_with_that_shape(demo_library):
    api, truth, _ = demo_library
    rng = np.random.default_rng(SCENE_SEED + 1)
    results = []
    for colour, shape in present_classes(truth):
        buffer = io.BytesIO()
        demo.single_shape(96, colour, shape, rng).save(buffer, "PNG")
        results.append(((colour, shape), run(api, {"image": upload_file(buffer.getvalue(), "query.png")})))
    recall, iou_share = score(results, truth, "image")
    assert recall >= RECALL_AT_1 and iou_share >= IOU_SHARE


@pytest.mark.slow
def test_region_queries_find_the_same_kind_of_shape_in_other_scenes(demo_library):
    from gallery.models import Region

    api, truth, ids = demo_library
    by_class = defaultdict(list)
    for name, shapes in truth.items():
        for s in shapes:
            by_class[(s.colour, s.shape)].append((name, s))
    results = []
    for klass, members in sorted(by_class.items()):
        if len(members) < 2:
            continue  # nothing else to find once the source image is left out
        name, placed = members[0]
        regions = Region.objects.filter(image_id=ids[name], kind="object")
        region = max(regions, key=lambda r: box_iou(tuple(r.box), placed.box))
        assert box_iou(tuple(region.box), placed.box) >= 0.5, "the proposer missed a shape"
        # The search leaves the source image out, so a hit is always another scene.
        results.append((klass, run(api, {"region_id": region.pk})))
    assert results, "no shape class appears in two scenes; change SCENE_SEED"
    recall, iou_share = score(results, truth, "region")
    assert recall >= RECALL_AT_1 and iou_share >= IOU_SHARE


@pytest.mark.slow
def test_scores_separate_matching_from_unrelated_scenes(demo_library):
    """The default MIN_SIMILARITY keeps the right scene and drops scenes without the shape."""
    from django.conf import settings

    api, truth, _ = demo_library
    right, wrong = [], []
    for colour, shape in present_classes(truth):
        response = api.post(
            reverse("api:search"),
            {"text": demo.caption(colour, shape), "min_score": -1, "page_size": 100},
            format="json",
        )
        for result in response.json()["results"]:
            has = any((s.colour, s.shape) == (colour, shape) for s in truth[result["original_name"]])
            (right if has else wrong).append(result["score"])
    report(
        f"[scores] matching scenes: median {np.median(right):.2f} (min {min(right):.2f}); "
        f"other scenes: median {np.median(wrong):.2f} (max {max(wrong):.2f}); MIN_SIMILARITY={settings.MIN_SIMILARITY}"
    )
    assert np.median(right) >= settings.MIN_SIMILARITY > np.median(wrong)
