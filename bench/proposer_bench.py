"""Seconds per image of the demo profile's region proposers (the weight-free colour proposer, and it
joined with the learned objectness map), how many proposals they make before and after
filter_proposals, on 640x480 pictures of four kinds: generated demo scenes, a noise texture, a noisy
gradient, and held-out scenes (shapes on photographs, bench/heldout.py's tuning ones); and on
held-out scenes, the share of true objects a kept proposal finds (IoU >= 0.5).

    .venv/bin/python bench/proposer_bench.py [--images 10] [--proposer colour+objectness] [--split evaluation]

With --reference it also times the area-by-area Python loop that defines the proposer (in
tests/search/test_models.py, which checks both find the same).
"""

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10, help="Pictures of each kind.")
    parser.add_argument("--reference", action="store_true", help="Also time the area-by-area reference loop.")
    parser.add_argument("--proposer", default="colour", choices=("colour", "colour+objectness"))
    parser.add_argument(
        "--split",
        default="tuning",
        choices=("tuning", "evaluation", "fresh"),
        help="Photographs of the held-out scenes.",
    )
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from PIL import Image as PILImage

    from bench import heldout
    from bench.heldout_offline import demo_proposer
    from search.vision.proposers import ColourProposer, box_iou, filter_proposals
    from search.vision.training import demo

    photos = heldout.photographs(heldout.SPLITS[args.split])
    truth = {}  # held-out picture id -> its true boxes

    rng = np.random.default_rng(0)
    kinds = {
        "demo scene": lambda: demo.scene(640, 480, rng, count=4)[0],
        "noise texture": lambda: PILImage.fromarray((rng.random((480, 640, 3)) * 255).astype(np.uint8)),
        "noisy gradient": lambda: PILImage.fromarray(
            (
                np.tile(np.linspace(0, 215, 640), (480, 1))[..., None].repeat(3, axis=2) * 0.6
                + rng.random((480, 640, 3)) * 100
            ).astype(np.uint8)
        ),
        "held-out scene": lambda: held_out(heldout.scene(int(rng.integers(1000)), rng, photos)),
    }

    def held_out(scene):
        picture = PILImage.open(io.BytesIO(scene.jpeg))
        truth[id(picture)] = [s.box for s in scene.shapes]
        return picture

    min_area = settings.MODEL_PROFILES["demo"]["REGION_MIN_AREA_FRACTION"]  # the profile that uses it
    proposer = demo_proposer(args.proposer)
    proposer.propose(kinds["demo scene"]())  # warm-up: imports, first allocations
    print(
        f"{args.proposer}: {'pictures':16} {'s/image (median)':>17} {'proposals':>10} {'after filter':>13} {'found':>6}"
        + ("  reference s/image" if args.reference else "")
    )
    for kind, make in kinds.items():
        pictures = [make() for _ in range(args.images)]
        seconds, raw, kept, reference, found = [], [], [], [], []
        for picture in pictures:
            start = time.perf_counter()
            proposals = proposer.propose(picture)
            seconds.append(time.perf_counter() - start)
            raw.append(len(proposals))
            boxes = [
                p.box
                for p in filter_proposals(
                    proposals,
                    width=640,
                    height=480,
                    min_area_fraction=min_area,
                    nms_iou=settings.REGION_NMS_IOU,
                    max_count=settings.REGION_MAX_PER_IMAGE,
                )
            ]
            kept.append(len(boxes))
            found += [any(box_iou(box, true) >= 0.5 for box in boxes) for true in truth.get(id(picture), [])]
            if args.reference:
                from tests.search.test_models import reference_colour_proposals

                start = time.perf_counter()
                reference_colour_proposals(ColourProposer(), picture)
                reference.append(time.perf_counter() - start)
        line = (
            f"{args.proposer}: {kind:16} {statistics.median(seconds):17.3f} {statistics.mean(raw):10.1f} {statistics.mean(kept):13.1f} "
            + (f"{statistics.mean(found):6.0%}" if found else f"{'':6}")
        )
        print(line + (f"  {statistics.median(reference):18.3f}" if reference else ""))


if __name__ == "__main__":
    main()
