""" "More like this" by what a photo is about, at the default settings (issue 29).

On backgrounds of cells and tiles the colour proposer cuts the flat pieces out as objects, and flat
patches of unrelated photos embed almost alike (0.999): searching with them, and finding them,
made "more like this" answer with photos that share a background colour, not a thing. A region with a
look-alike in its own photo (Region.twin_similarity over REPEATED_REGION_SIMILARITY) is texture:
it neither searches nor is found.

The scenes are bench/heldout.py's evaluation textures (cells, marble, clutter), which no choice
looked at; REPEATED_REGION_SIMILARITY was chosen on the tuning ones (tiles, wood, fractal noise).
"""

import importlib

import numpy as np
import pytest
from django.apps import apps
from django.urls import reverse

from gallery.models import Image, Region
from search.ingest import twin_similarities
from tests.conftest import MEASURED

SCENES = 24
SEED = 2917  # not the training seed, nor another test's


def test_twin_similarity_is_each_vectors_best_match_among_the_others():
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    assert twin_similarities(vectors) == pytest.approx([0.8, 0.8, 0.6])
    assert np.isnan(twin_similarities(vectors[:1])).all()
    assert twin_similarities(vectors[:0]).shape == (0,)


def test_the_migration_measures_the_regions_stored_before(owner, upload):
    """Photos processed before twin_similarity existed get it from their stored vectors."""
    from gallery.models import Region as RegionModel
    from tests import images

    image, alone = upload(owner, images.png(seed=1), "a.png").image, upload(owner, images.png(seed=2), "b.png").image
    RegionModel.objects.all().delete()

    def region(of, kind, vector):
        return RegionModel.objects.create(
            image=of,
            kind=kind,
            x1=0,
            y1=0,
            x2=5,
            y2=5,
            area_fraction=0.25,
            embedding=RegionModel.pack_vector(np.array(vector, dtype=np.float32)),
            embedding_model="m",
            embedding_dim=2,
        )

    whole = region(image, "global", [1, 0])
    first, second, third = (
        region(image, "object", [1, 0]),
        region(image, "object", [0.6, 0.8]),
        region(image, "object", [0, 1]),
    )
    only = region(alone, "object", [1, 0])
    migration = importlib.import_module("gallery.migrations.0021_region_twin_similarity")
    migration.measure(apps, None)
    found = dict(RegionModel.objects.values_list("pk", "twin_similarity"))
    assert found[whole.pk] is None and found[only.pk] is None
    assert found[first.pk] == pytest.approx(0.6, abs=1e-3)
    assert found[second.pk] == pytest.approx(0.8, abs=1e-3)
    assert found[third.pk] == pytest.approx(0.8, abs=1e-3)


@pytest.fixture
def textured_library(upload_heldout):
    api, scenes, ids = upload_heldout("textures", SCENES, seed=SEED)
    assert set(Image.objects.values_list("status", "objects_status")) == {("ready", "found")}
    return api, {ids[s.name]: {(p.colour, p.shape) for p in s.shapes} for s in scenes}


def similar(api, image_id: int, **extra) -> list[dict]:
    response = api.post(reverse("api:search"), {"image_id": image_id, "page_size": 50, **extra}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["results"]


def test_more_like_this_finds_photos_that_share_a_thing_not_a_background(textured_library, settings):
    api, classes = textured_library
    repeated = Region.objects.filter(kind="object", twin_similarity__gte=settings.REPEATED_REGION_SIMILARITY)
    assert repeated.exists()  # the cells and clutter give the proposer texture to cut out
    p5, shown, right, found_by_repeated = [], 0, 0, 0
    for image_id, mine in classes.items():
        relevant = {other for other, theirs in classes.items() if other != image_id and theirs & mine}
        top = similar(api, image_id, min_score=-1)[:5]
        p5.append(np.mean([r["image_id"] in relevant for r in top[: max(1, min(5, len(relevant)))]]))
        results = similar(api, image_id)
        shown += len(results)
        right += sum(r["image_id"] in relevant for r in results)
        found_by_repeated += repeated.filter(pk__in=[r["region_id"] for r in results]).count()
    precision = right / shown if shown else float("nan")
    line = (
        f"more like this, evaluation textures (demo profile, API): P@5 {np.mean(p5):.2f}; at the default threshold "
        f"{shown / len(classes):.1f} shown per query, {precision:.0%} right"
    )
    print(line)
    MEASURED.append(line)
    # Before: 68 results found by a repeated region, P@5 0.73, 69% of what is shown right; leaving them
    # out: 0, 0.83, 77%; regions seen with a little of their surroundings (REGION_CROP_CONTEXT): 0.81,
    # 80% (the P@5 goal, 0.9, is not reached yet: bench/README.md). Floors a little under.
    assert found_by_repeated == 0
    assert np.mean(p5) >= 0.78
    assert precision >= 0.77
