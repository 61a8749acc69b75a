"""Colour as cameras see it (issue 29): the demo CLIP trained on eight exact colours loses its objects
once a photo's white balance, exposure, saturation or tone curve is off. Training a share of its
pictures in a camera's colours (search.vision.training.demo.camera_colours, CAMERA_COLOURS_SHARE)
fixes this, but such a model is not committed yet (bench/README.md): until then the test is a strict
xfail, so it says when a model that passes it lands.

Every scene here is one of bench/heldout.py's evaluation photographs, each in its own full-strength
camera cast (bench.heldout.camera_cast, another implementation of the same kind of change, at its
full ranges): a drawn box around an object, searched through the API at the default settings, must
find the other photos holding that object, and what the default shows must be mostly right.
"""

import numpy as np
import pytest
from django.urls import reverse

from gallery.models import Image
from tests.conftest import MEASURED

SCENES = 16
SEED = 3301  # not the training seed, nor another test's


@pytest.fixture
def cast_library(upload_heldout):
    api, scenes, ids = upload_heldout("evaluation", SCENES, seed=SEED, cast=1.0)
    assert set(Image.objects.values_list("status", "objects_status")) == {("ready", "found")}
    return api, {ids[s.name]: s for s in scenes}


@pytest.mark.xfail(
    strict=True,
    reason="the committed demo CLIP is not trained in camera colours yet (R@1 0.69, 58% shown right; a model "
    "trained with CAMERA_COLOURS_SHARE 0.25 passes with 0.94 and 98%): bench/README.md, issue 29",
)
def test_a_drawn_box_finds_its_object_in_photos_of_other_colour_casts(cast_library):
    api, scenes = cast_library
    classes = {image_id: {(p.colour, p.shape) for p in scene.shapes} for image_id, scene in scenes.items()}
    top1, shown, right = [], 0, 0
    for image_id, scene in scenes.items():
        for placed in scene.shapes:
            relevant = {
                other
                for other, theirs in classes.items()
                if other != image_id and (placed.colour, placed.shape) in theirs
            }
            if not relevant:
                continue
            payload = {"image_id": image_id, "box": list(placed.box), "page_size": 50}
            ranked = api.post(reverse("api:search"), {**payload, "min_score": -1}, format="json").json()["results"]
            top1.append(bool(ranked) and ranked[0]["image_id"] in relevant)
            results = api.post(reverse("api:search"), payload, format="json").json()["results"]
            shown += len(results)
            right += sum(r["image_id"] in relevant for r in results)
    precision = right / shown if shown else float("nan")
    line = (
        f"camera casts (evaluation photographs, full strength, demo profile, API): drawn box R@1 {np.mean(top1):.2f} "
        f"over {len(top1)} queries; at the default threshold {shown / len(top1):.1f} shown per query, {precision:.0%} right"
    )
    print(line)
    MEASURED.append(line)
    # The committed model: R@1 0.69, 58% of what is shown right (56% before regions had a margin); trained in camera colours: 0.94 and 98%.
    assert np.mean(top1) >= 0.85
    assert precision >= 0.85
