"""Search quality on held-out scenes (bench/heldout.py): photographs behind the shapes, 3-5 rotated,
small, overlapping objects, JPEG. The demo CLIP trains on varied backgrounds, but never on these
photographs or these layouts, so this is how we know whether the demo profile's quality generalises
(issue 13). Every query goes through the API after upload -> pipeline -> index, like a person's.
bench/heldout_offline.py computes the same figures in one process, for trying changes quickly.

The figures print at the end of the run (and bench/README.md keeps them). The assertions are floors
a little under what the current models reach, so a change that loses quality fails; the goals of
issue 13 are far above them.
"""

import os
from collections import defaultdict

import numpy as np
import pytest
from django.urls import reverse

from search.vision.proposers import box_iou
from search.vision.training import demo
from tests.conftest import MEASURED, upload_file

pytestmark = [pytest.mark.slow]
SCENES = 28  # seven per photograph
# HELDOUT_SPLIT=tuning runs the same measurements on the tuning photographs, where parameters are
# chosen (HELDOUT_SPLIT=fresh: on the photographs kept back, bench/heldout.py); the floors below hold
# for the evaluation photographs, which no choice looked at.
SPLIT = os.environ.get("HELDOUT_SPLIT", "evaluation")
# HELDOUT_CAST=1: every scene in a camera's colours (bench.heldout.camera_cast at that strength).
CAST = float(os.environ.get("HELDOUT_CAST", "0"))
LABEL = f"{SPLIT}, cast {CAST:g}" if CAST else SPLIT
SEED = 7013  # not demo_clip.TRAIN_SEED, and nothing trains on these photographs anyway
PAGE = 50  # ranks looked at for average precision


@pytest.fixture
def heldout_library(upload_heldout):
    api, scenes, ids = upload_heldout(SPLIT, SCENES, seed=SEED, cast=CAST)
    return api, {s.name: s for s in scenes}, ids


def search(api, payload: dict, *, ranked: bool = True) -> list[dict]:
    """Results of one API search: ranked (min_score=-1, PAGE results) or as a person sees them (the
    default threshold)."""
    fmt = "multipart" if "image" in payload else "json"
    extra = {"min_score": -1} if ranked else {}
    response = api.post(reverse("api:search"), {**payload, **extra, "page_size": PAGE}, format=fmt)
    assert response.status_code == 200, response.json()
    return response.json()["results"]


class Tally:
    """R@1, mean average precision, top-1 box IoU and precision at the default threshold of one query kind."""

    def __init__(self, label: str):
        self.label = label
        self.top1, self.precisions, self.ious, self.shown, self.shown_right = [], [], [], 0, 0

    def add(self, ranked: list[dict], relevant: set[str], true_boxes: dict[str, list], shown: list[dict] | None = None):
        from bench.heldout import average_precision

        names = [r["original_name"] for r in ranked]
        self.top1.append(bool(names) and names[0] in relevant)
        self.precisions.append(average_precision(names, relevant, PAGE))
        if names and names[0] in relevant:
            box = tuple(ranked[0]["box"])
            self.ious.append(max(box_iou(box, true) for true in true_boxes[names[0]]))
        if shown is not None:
            self.shown += len(shown)
            self.shown_right += sum(r["original_name"] in relevant for r in shown)

    def report(self) -> dict:
        figures = {
            "queries": len(self.top1),
            "R@1": float(np.mean(self.top1)),
            "mAP": float(np.mean(self.precisions)),
            "IoU>=0.5": float(np.mean([iou >= 0.5 for iou in self.ious])) if self.ious else 0.0,
            "precision shown": self.shown_right / self.shown if self.shown else float("nan"),
            "shown per query": self.shown / len(self.top1),
        }
        line = (
            f"heldout/{LABEL} [{self.label}] queries={figures['queries']} R@1={figures['R@1']:.2f} mAP={figures['mAP']:.2f} "
            f"top-1 box IoU>=0.5 in {figures['IoU>=0.5']:.0%}"
        )
        if self.shown:
            line += f"; at the default threshold {figures['shown per query']:.1f} shown per query, {figures['precision shown']:.0%} right"
        print(line)
        MEASURED.append(line)
        return figures


def classes_in(scene) -> set[tuple[str, str]]:
    return {(s.colour, s.shape) for s in scene.shapes}


def where(scenes, klass) -> tuple[set[str], dict[str, list]]:
    """Scenes holding the class, and the true boxes of it in each."""
    boxes = defaultdict(list)
    for name, scene in scenes.items():
        for s in scene.shapes:
            if (s.colour, s.shape) == klass:
                boxes[name].append(s.box)
    return set(boxes), boxes


def test_heldout_scenes_search_quality(heldout_library):
    from io import BytesIO

    from PIL import Image as PILImage

    from gallery.models import Region

    api, scenes, ids = heldout_library
    figures = {}

    text = Tally("text")
    for klass in sorted(set().union(*(classes_in(s) for s in scenes.values()))):
        relevant, boxes = where(scenes, klass)
        query = {"text": demo.caption(*klass)}
        text.add(search(api, query), relevant, boxes, shown=search(api, query, ranked=False))
    figures["text"] = text.report()

    crop, region, drawn, own_scene_first, found = Tally("object crop"), Tally("region"), Tally("drawn box"), [], []
    region_from_found = Tally("region, from the objects that have one")  # the others cannot start a region search
    for name, scene in sorted(scenes.items()):
        picture = PILImage.open(BytesIO(scene.jpeg))
        regions = list(Region.objects.filter(image_id=ids[name], kind="object"))
        for placed in scene.shapes:
            klass = (placed.colour, placed.shape)
            relevant, boxes = where(scenes, klass)
            best = max(regions, key=lambda r: box_iou(tuple(r.box), placed.box), default=None)
            found.append(best is not None and box_iou(tuple(best.box), placed.box) >= 0.5)
            others = relevant - {name}
            buffer = BytesIO()
            picture.crop(placed.box).save(buffer, "PNG")
            ranked = search(api, {"image": upload_file(buffer.getvalue(), "crop.png")})
            crop.add(ranked, relevant, boxes)
            own_scene_first.append(bool(ranked) and ranked[0]["original_name"] == name)
            if not others:
                continue  # region and box searches leave their own scene out: nothing to find
            drawn.add(search(api, {"image_id": ids[name], "box": list(placed.box)}), others, boxes)
            if not found[-1]:
                region.add([], others, boxes)  # no region found for it: "find similar" cannot start
            else:
                region.add(search(api, {"region_id": best.pk}), others, boxes)
                region_from_found.add(search(api, {"region_id": best.pk}), others, boxes)
    figures["crop"], figures["region"], figures["box"] = crop.report(), region.report(), drawn.report()
    figures["region, found objects"] = region_from_found.report()
    own = float(np.mean(own_scene_first))
    line = f"heldout/{LABEL} [object crop] finds its own scene first in {own:.0%} of {len(own_scene_first)} queries"
    print(line)
    MEASURED.append(line)

    similar_p5, similar_shown = [], []
    for name, scene in sorted(scenes.items()):
        ranked = search(api, {"image_id": ids[name]})[:5]
        similar_p5.append(
            np.mean([bool(classes_in(scenes[r["original_name"]]) & classes_in(scene)) for r in ranked])
            if ranked
            else 0.0
        )
        similar_shown += [
            bool(classes_in(scenes[r["original_name"]]) & classes_in(scene))
            for r in search(api, {"image_id": ids[name]}, ranked=False)
        ]
    objects_per_image = Region.objects.filter(kind="object").count() / len(scenes)
    true_per_image = np.mean([len(s.shapes) for s in scenes.values()])
    line = (
        f"heldout/{LABEL} [more like this] P@5={np.mean(similar_p5):.2f}; at the default threshold "
        f"{len(similar_shown) / len(scenes):.1f} shown per query, {np.mean(similar_shown):.0%} right; object regions per image "
        f"{objects_per_image:.1f} (true objects {true_per_image:.1f}, {np.mean(found):.0%} of them found: a region with IoU >= 0.5)"
    )
    print(line)
    MEASURED.append(line)

    # Composed queries (issue 14): "a <colour> shape" and a photo of the shape in another colour.
    from bench.heldout_offline import composed_queries

    ordered = sorted(scenes)  # composed_queries numbers scenes in this order
    parts = {kind: Tally(f"composed, {kind}") for kind in ("words", "photo", "both")}
    empty_though_right = 0  # words + photo: nothing shown at the default, though the first ranked is right
    for klass, words, number, box in composed_queries([scenes[name] for name in ordered]):
        buffer = BytesIO()
        PILImage.open(BytesIO(scenes[ordered[number]].jpeg)).crop(box).save(buffer, "PNG")
        relevant, boxes = where(scenes, klass)
        for kind, payload in (
            ("words", {"text": words}),
            ("photo", {"image": upload_file(buffer.getvalue(), "p.png")}),
            ("both", {"text": words, "image": upload_file(buffer.getvalue(), "p.png")}),
        ):
            ranked = search(api, payload)
            if kind != "both":
                parts[kind].add(ranked, relevant, boxes)
                continue
            payload["image"] = upload_file(buffer.getvalue(), "p.png")  # the first upload was read
            shown = search(api, payload, ranked=False)
            parts[kind].add(ranked, relevant, boxes, shown=shown)
            empty_though_right += not shown and bool(ranked) and ranked[0]["original_name"] in relevant
    composed = {kind: tally.report() for kind, tally in parts.items()}
    line = (
        f"heldout/{LABEL} [composed, both] empty at the default though the first ranked is right: {empty_though_right}"
    )
    print(line)
    MEASURED.append(line)

    # Floors under today's figures (bench/README.md): a change that loses quality fails here.
    assert composed["both"]["R@1"] > max(composed["words"]["R@1"], composed["photo"]["R@1"]) + 0.2
    assert composed["both"]["mAP"] > max(composed["words"]["mAP"], composed["photo"]["mAP"]) + 0.2
    if SPLIT != "evaluation" or CAST:
        return
    assert figures["text"]["R@1"] >= FLOORS["text R@1"]
    assert figures["text"]["IoU>=0.5"] >= FLOORS["text IoU>=0.5"]
    assert figures["text"]["precision shown"] >= FLOORS["text precision shown"]
    assert figures["crop"]["R@1"] >= FLOORS["crop R@1"]
    assert figures["region"]["R@1"] >= FLOORS["region R@1"]
    assert figures["region, found objects"]["R@1"] >= FLOORS["region R@1, found objects"]
    assert figures["box"]["R@1"] >= FLOORS["box R@1"]
    assert np.mean(similar_p5) >= FLOORS["more like this P@5"]
    assert np.mean(similar_shown) >= FLOORS["more like this precision shown"]
    assert own >= FLOORS["own scene first"]
    assert composed["both"]["R@1"] >= FLOORS["composed R@1"]
    assert composed["both"]["precision shown"] >= FLOORS["composed precision shown"]
    assert empty_though_right == 0


# 2026-11-29 on the evaluation photographs (demo CLIP trained on varied backgrounds, the colour
# proposer joined with the learned objectness map at 640 px and two levels, trained also on speckled
# backgrounds; WHOLE_IMAGE_HANDICAP and "more like this" by objects): text R@1 0.97 with top-1
# IoU >= 0.5 in 100% and 99% of what the default threshold shows right, crop 0.95 (its own scene
# first 94%), region 0.92 (0.98 from the objects with a region), box 0.94, more like this P@5 0.88
# and 81% right of what its own default threshold shows (bench/README.md). Issue 13's goals are the
# floors where today's figure clears them by more than two queries; region R@1 sits one point under.
FLOORS = {
    "text R@1": 0.9,
    "text IoU>=0.5": 0.9,
    "text precision shown": 0.8,
    "crop R@1": 0.9,
    "region R@1": 0.89,
    "region R@1, found objects": 0.93,
    "box R@1": 0.9,
    "more like this P@5": 0.8,
    "more like this precision shown": 0.75,
    "composed R@1": 0.8,
    # Words + a photo at the default (COMPOSED_MARGIN): nothing was shown before; 1.8 a query, 93% right.
    "composed precision shown": 0.8,
    "own scene first": 0.9,
}
