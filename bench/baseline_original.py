"""The original design this product comes from, re-implemented faithfully for comparison.

Per image it (1) loads SAM and CLIP from scratch, (2) runs segment_anything's stock
SamAutomaticMaskGenerator with its 32x32 grid, (3) embeds each crop with CLIP one at a time.
Only the mask thresholds are passed in, so both sides of bench/ingest_bench.py use the same ones.

bench/ingest_bench.py runs it in a process of its own, as the original ran: stock modules and the C
library's default allocator, none of the settings our worker applies:

    .venv/bin/python -m bench.baseline_original IMAGE --pred-iou-thresh 0.06 --stability-score-thresh 0
prints one JSON line: seconds, mask count, mask boxes (XYWH) and the per-stage breakdown.
"""

import argparse
import json
import time

import numpy as np
import torch
from PIL import Image as PILImage

from bench.stages import StageTimer
from search.vision.runtime import seeded_random_init

ORIGINAL_SETTINGS = dict(
    points_per_side=32, pred_iou_thresh=0.86, stability_score_thresh=0.92, box_nms_thresh=0.7, min_mask_region_area=1000
)


def ingest_original(
    image: PILImage.Image,
    *,
    pred_iou_thresh: float,
    stability_score_thresh: float,
    extra_crops: list[tuple[int, int, int, int]] = (),
) -> dict:
    """Returns {"seconds", "masks", "stages", "extra_crops_seconds"} for one image.

    extra_crops (XYXY boxes) are embedded afterwards the same way, one at a time, and timed on their
    own: what crops + CLIP cost with a realistic number of masks (random weights leave about one).
    """
    import open_clip
    from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

    timer = StageTimer()
    started = time.perf_counter()
    with timer.stage("model loading"), seeded_random_init():
        # Seeded like our side's random SAM: "the same checkpoint", so the masks can be compared.
        sam = sam_model_registry["vit_b"](checkpoint=None).eval()
        clip, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
        clip.eval()
    timer.hook_sam(sam)
    settings = {
        **ORIGINAL_SETTINGS,
        "pred_iou_thresh": pred_iou_thresh,
        "stability_score_thresh": stability_score_thresh,
    }
    with timer.stage("segmentation (total)"):
        masks = SamAutomaticMaskGenerator(sam, **settings).generate(np.asarray(image))
    with timer.stage("crops + CLIP (one at a time)"), torch.no_grad():
        for mask in masks:
            x, y, w, h = (int(v) for v in mask["bbox"])
            crop = image.crop((x, y, x + max(1, w), y + max(1, h)))
            clip.encode_image(preprocess(crop).unsqueeze(0))
        clip.encode_image(preprocess(image).unsqueeze(0))
    timer.unhook()
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    with torch.no_grad():
        for box in extra_crops:
            clip.encode_image(preprocess(image.crop(box)).unsqueeze(0))
    return {
        "seconds": seconds,
        "masks": masks,
        "stages": timer.breakdown(),
        "extra_crops_seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("--pred-iou-thresh", type=float, required=True)
    parser.add_argument("--stability-score-thresh", type=float, required=True)
    parser.add_argument("--extra-crops", default="[]", help="JSON list of XYXY boxes to embed afterwards, timed apart")
    args = parser.parse_args()
    result = ingest_original(
        PILImage.open(args.image).convert("RGB"),
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
        extra_crops=[tuple(box) for box in json.loads(args.extra_crops)],
    )
    boxes = sorted([int(v) for v in mask["bbox"]] for mask in result["masks"])
    print(
        json.dumps(
            {
                "seconds": result["seconds"],
                "masks": len(boxes),
                "boxes": boxes,
                "stages": result["stages"],
                "extra_crops_seconds": result["extra_crops_seconds"],
            }
        )
    )


if __name__ == "__main__":
    main()
