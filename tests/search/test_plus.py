""" "a red circle + a blue square" asks for photos that hold both, through the API at the default
settings (demo profile, held-out scenes). The weighted mean of the two phrases' vectors, matched
against single regions, matched neither: it never showed anything and ranked scenes holding both
below what one phrase alone found."""

import io
import itertools

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from gallery.models import Image
from search.vision.training import demo
from tests.conftest import MEASURED, upload_file

SCENES = 16
SCENE_SEED = 2029  # neither the training seed nor the other tests'


def caption(shape) -> str:
    return f"a {shape.colour} {shape.shape}"


@pytest.fixture
def library(owner, demo_profile, django_capture_on_commit_callbacks):
    rng = np.random.default_rng(SCENE_SEED)
    truth, files = {}, []
    for number in range(SCENES):
        picture, shapes = demo.scene(256, 192, rng, count=2 + number % 2)
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        files.append(upload_file(buffer.getvalue(), f"scene-{number}.png"))
        truth[f"scene-{number}.png"] = {caption(shape) for shape in shapes}
    api = APIClient()
    api.force_authenticate(owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(reverse("api:images"), {"files": files}, format="multipart").status_code == 201
    assert set(Image.objects.values_list("objects_status", flat=True)) == {"found"}
    return api, truth


def measured(api, truth, pairs, **options) -> tuple[float, float, int, int]:
    """(R@1, share of shown results that hold both, results shown, queries showing nothing)."""
    first_right = shown = shown_right = empty = 0
    for first, second in pairs:
        response = api.post(reverse("api:search"), {"text": f"{first} + {second}", **options}, format="json")
        assert response.status_code == 200, response.json()
        results = response.json()["results"]
        holding = {name for name, captions in truth.items() if {first, second} <= captions}
        first_right += bool(results) and results[0]["original_name"] in holding
        shown += len(results)
        shown_right += sum(result["original_name"] in holding for result in results)
        empty += not results
    return first_right / len(pairs), shown_right / max(shown, 1), shown, empty


def test_plus_finds_photos_that_hold_each_phrase_and_shows_only_those(library):
    api, truth = library
    pairs = sorted({pair for captions in truth.values() for pair in itertools.combinations(sorted(captions), 2)})
    ranked_at_1, _, _, _ = measured(api, truth, pairs, min_score=-1)
    at_1, precision, shown, empty = measured(api, truth, pairs)
    line = (
        f"plus (demo profile, {len(pairs)} pairs on {SCENES} held-out scenes): ranking R@1 {ranked_at_1:.2f}; "
        f"default settings: R@1 {at_1:.2f}, {shown / len(pairs):.1f} shown per query, {precision:.2f} of them "
        f"right, {empty} queries show nothing"
    )
    print(line)
    MEASURED.append(line)
    # The mean of the two vectors ranked a scene holding both first for 0.53 of the pairs and showed
    # nothing at the default settings (0.00).
    assert ranked_at_1 >= 0.9
    # Tight crops of squares scored under the floor (R@1 0.50 at the default, 15 of 30 pairs showed
    # nothing) until regions were embedded with their surroundings (REGION_CROP_CONTEXT): 1.00, 0.
    assert precision >= 0.8 and at_1 >= 0.9
    assert empty == 0
