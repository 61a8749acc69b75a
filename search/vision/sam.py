"""Segment Anything as a region proposer: the model built through segment_anything's registry
(plus a tiny test-only variant), and SamProposer, which runs our FastMaskGenerator (the stock
automatic mask generator's masks without its thrown-away work; search/vision/fast_sam.py).
"""

import math
import os

import numpy as np
from PIL import Image as PILImage

from search.vision.proposers import Proposal
from search.vision.runtime import ModelUnavailable, quantize_int8, reduced_precision, seeded_random_init, torch_device

# SAM_CHECKPOINT value that builds the model with random weights (speed does not depend on them).
RANDOM_WEIGHTS = "random"


def _build_tiny_sam(checkpoint=None):
    from segment_anything.build_sam import _build_sam

    # Same architecture family as vit_b, shrunk to a few thousand parameters: for tests only.
    return _build_sam(
        encoder_embed_dim=32,
        encoder_depth=2,
        encoder_num_heads=2,
        encoder_global_attn_indexes=[1],
        checkpoint=checkpoint,
    )


def sam_builders() -> dict:
    from segment_anything import sam_model_registry

    return {**sam_model_registry, "tiny": _build_tiny_sam}


def sam_checkpoint_problem(*, model_type: str, checkpoint: str) -> str | None:
    """Why SAM's weights cannot be loaded from `checkpoint` (a file check, nothing read), or None."""
    if checkpoint == RANDOM_WEIGHTS or model_type == "tiny":
        return None
    if not checkpoint or not os.path.isfile(checkpoint):
        return (
            f"The SAM checkpoint for {model_type} is missing (looked for {checkpoint or 'SAM_CHECKPOINT'}). "
            f"Run `python manage.py fetch_models` on a machine with internet access, or download it "
            f"and set SAM_CHECKPOINT to its path."
        )
    return None


def load_sam_model(*, model_type: str, checkpoint: str):
    """Build SAM through segment_anything's registry; raise ModelUnavailable with the fix if weights are missing."""
    builders = sam_builders()
    if model_type not in builders:
        raise ModelUnavailable(f"SAM_MODEL_TYPE={model_type!r}; choose one of {sorted(builders)}.")
    problem = sam_checkpoint_problem(model_type=model_type, checkpoint=checkpoint)
    if problem:
        raise ModelUnavailable(problem)
    if checkpoint == RANDOM_WEIGHTS:
        checkpoint = ""  # explicit opt-in: timing benchmarks only, the masks are noise
    try:
        with seeded_random_init():
            model = builders[model_type](checkpoint=checkpoint or None)
    except Exception as error:
        raise ModelUnavailable(f"The SAM checkpoint {checkpoint} could not be loaded: {error}") from error
    from search.vision.fast_sam_model import use_chunked_attention

    model = model.to(torch_device()).eval()
    use_chunked_attention(model)  # same results, a fraction of the memory traffic
    # The mask decoder stays float: PromptDecoder reads its weights directly, and reorganised it
    # is faster than the int8 stock decoder.
    model.image_encoder = quantize_int8(model.image_encoder)
    return model


class SamProposer:
    name = "sam"

    def __init__(
        self,
        model,
        *,
        points_per_side: int,
        points_per_batch: int,
        pred_iou_thresh: float,
        stability_score_thresh: float,
        box_nms_thresh: float,
        min_mask_region_area: int,
        max_side: int,
    ):
        from search.vision.fast_sam import FastMaskGenerator

        self.max_side = max_side
        # Same masks as segment_anything's SamAutomaticMaskGenerator, without its thrown-away work.
        self.generator = FastMaskGenerator(
            model,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            box_nms_thresh=box_nms_thresh,
            min_mask_region_area=min_mask_region_area,
        )

    def propose(self, image: PILImage.Image) -> list[Proposal]:
        return self.propose_batch([image])[0]

    def propose_batch(self, images: list[PILImage.Image]) -> list[list[Proposal]]:
        """Proposals for each image; SAM's image encoder sees them all in one batch."""
        import torch

        scaled = [self._downscaled(image) for image in images]
        with torch.inference_mode(), reduced_precision():
            masks = self.generator.generate_batch([np.asarray(small) for small, _ in scaled])
        return [
            self._proposals(image, small, scale, found)
            for image, (small, scale), found in zip(images, scaled, masks, strict=True)
        ]

    def _downscaled(self, image: PILImage.Image) -> tuple[PILImage.Image, float]:
        """The copy SAM sees (at most max_side pixels) and its scale."""
        width, height = image.size
        scale = min(1.0, self.max_side / max(width, height))
        small = (
            image
            if scale == 1.0
            else image.resize(
                (max(1, round(width * scale)), max(1, round(height * scale))), PILImage.Resampling.BILINEAR
            )
        )
        return small, scale

    @staticmethod
    def _proposals(image: PILImage.Image, small: PILImage.Image, scale: float, masks: list[dict]) -> list[Proposal]:
        width, height = image.size
        small_area = small.size[0] * small.size[1]
        proposals = []
        for mask in masks:
            x, y, w, h = mask["bbox"]  # XYWH in the small image
            box = (
                max(0, math.floor(x / scale)),
                max(0, math.floor(y / scale)),
                min(width, math.ceil((x + w) / scale)),
                min(height, math.ceil((y + h) / scale)),
            )
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            proposals.append(
                Proposal(
                    box=box,
                    area_fraction=float(mask["area"]) / small_area,
                    score=float(mask["predicted_iou"]) * float(mask["stability_score"]),
                )
            )
        return proposals
