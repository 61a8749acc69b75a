"""Region proposers: find the objects in a photo worth a search result of their own.

A proposer takes an RGB image and returns boxes in that image's pixels. The SAM proposer runs
Segment Anything's automatic mask generator; all proposers share `filter_proposals`.
"""
import logging
import math
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from search.loading import ModelUnavailable, quantize_int8, reduced_precision, seeded_random_init, torch_device

logger = logging.getLogger(__name__)

# SAM_CHECKPOINT value that builds the model with random weights (speed does not depend on them).
RANDOM_WEIGHTS = "random"
# A box this close to the whole image duplicates the global region, which is always embedded.
WHOLE_IMAGE_IOU = 0.9


@dataclass(frozen=True)
class Proposal:
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in image pixels; x2 and y2 exclusive
    area_fraction: float  # mask pixels / image pixels
    score: float  # higher is more confident


class RegionProposer(Protocol):
    name: str

    def propose(self, image: PILImage.Image) -> list[Proposal]: ...

    def propose_batch(self, images: list[PILImage.Image]) -> list[list[Proposal]]: ...


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def filter_proposals(
    proposals: list[Proposal], *, width: int, height: int, min_area_fraction: float, nms_iou: float, max_count: int
) -> list[Proposal]:
    """Best-first: drop tiny masks and near-whole-image boxes, suppress overlaps, keep at most max_count."""
    whole = (0, 0, width, height)
    kept: list[Proposal] = []
    for proposal in sorted(proposals, key=lambda p: p.score, reverse=True):
        if len(kept) >= max_count:
            break
        if proposal.area_fraction < min_area_fraction or box_iou(proposal.box, whole) >= WHOLE_IMAGE_IOU:
            continue
        if any(box_iou(proposal.box, other.box) > nms_iou for other in kept):
            continue
        kept.append(proposal)
    return kept


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
    from search.fast_sam_model import use_chunked_attention

    model = model.to(torch_device()).eval()
    use_chunked_attention(model)  # same results, a fraction of the memory traffic
    # The mask decoder stays float: PromptDecoder reads its weights directly, and reorganised it
    # is faster than the int8 stock decoder.
    model.image_encoder = quantize_int8(model.image_encoder)
    return model


class SamProposer:
    name = "sam"

    def __init__(self, model, *, points_per_side: int, points_per_batch: int, pred_iou_thresh: float,
                 stability_score_thresh: float, box_nms_thresh: float, min_mask_region_area: int, max_side: int):
        from search.fast_sam import FastMaskGenerator

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
        return [self._proposals(image, small, scale, found) for image, (small, scale), found in zip(images, scaled, masks)]

    def _downscaled(self, image: PILImage.Image) -> tuple[PILImage.Image, float]:
        """The copy SAM sees (at most max_side pixels) and its scale."""
        width, height = image.size
        scale = min(1.0, self.max_side / max(width, height))
        small = image if scale == 1.0 else image.resize(
            (max(1, round(width * scale)), max(1, round(height * scale))), PILImage.Resampling.BILINEAR
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
            proposals.append(Proposal(
                box=box,
                area_fraction=float(mask["area"]) / small_area,
                score=float(mask["predicted_iou"]) * float(mask["stability_score"]),
            ))
        return proposals


class ColourProposer:
    """Weight-free proposer: areas of nearly flat colour, walled in by edges, that stand out from their
    surroundings and are compact.

    Finds the flat-coloured objects of generated scenes, so the demo profile and the tests that check
    boxes use it; photographs need SAM. An edge is a pixel whose 3x3 neighbourhood spans more than
    EDGE in some channel (a morphological gradient): that catches a border blurred over two pixels by
    antialiasing or JPEG's halved colour resolution, where the step between neighbours is small and
    an object would leak into a background of a similar colour. What is left are flat areas, one
    connected component each; a photograph's texture breaks into many small ones, so specks are
    dropped from the component table first, and each survivor's contrast with the ring around it
    comes from integral images, not a loop.
    """

    name = "colour"
    WORK_SIDE = 512  # edges and areas are found on a copy at most this large
    EDGE = 40.0
    # Mean-colour distance (RGB) between a flat area and the ring around it. Texture differs from its
    # neighbours by ~10-20; a drawn object by far more.
    MIN_CONTRAST = 40.0
    RING = 3  # pixels around the component's box that count as its surroundings
    # Objects are compact: they fill much of their box (a star ~0.35, a circle 0.79) and are not
    # long strips. Texture fragments and the seams along a photograph's edges are neither.
    MIN_FILL = 0.3
    MAX_ASPECT = 2.5
    # Small areas must stand out more: a speck of texture can differ from its ring by 40, a small
    # drawn object on a photograph by more. A small one touching the picture's edge has half a ring
    # to compare with and is a seam, not an object: it is left out.
    SMALL_FRACTION = 0.005
    SMALL_MIN_CONTRAST = 70.0
    # Largest standard deviation of an area's colour (its worst channel): a painted object is one
    # colour plus JPEG noise (~2-6); the sky or a sleeve that looks flat pixel to pixel drifts more.
    MAX_SPREAD = 15.0

    def __init__(self, *, min_area_fraction: float = 0.0):
        # Smaller components are dropped at once: filter_proposals would drop them anyway.
        self.min_area_fraction = min_area_fraction

    def propose_batch(self, images: list[PILImage.Image]) -> list[list[Proposal]]:
        return [self.propose(image) for image in images]

    def flat_areas(self, image: PILImage.Image) -> tuple[float, PILImage.Image, np.ndarray, np.ndarray]:
        """(scale, the working copy, its flat areas' connected-component labels (0: edges), and
        cv2's stats row per label: x, y, width, height, pixels)."""
        import cv2

        width, height = image.size
        scale = min(1.0, self.WORK_SIDE / max(width, height))
        small = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), PILImage.Resampling.NEAREST)
        spread = cv2.morphologyEx(np.asarray(small), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).max(axis=2)
        _, components, stats, _ = cv2.connectedComponentsWithStats((spread <= self.EDGE).astype(np.uint8), connectivity=4)
        return scale, small, components, stats

    def propose(self, image: PILImage.Image) -> list[Proposal]:
        import cv2

        width, height = image.size
        scale, small, components, stats = self.flat_areas(image)
        pixels = np.asarray(small, dtype=np.float32)
        rows, cols = components.shape
        area = components.size
        x, y, w, h, size = (stats[:, column].astype(np.int64) for column in range(5))
        big = np.flatnonzero(size >= self.min_area_fraction * area)
        big = big[big > 0]  # label 0: the edges
        if len(big) == 0:
            return []
        integral = cv2.integral(pixels)  # (rows+1, cols+1, 3): the colour sums of every top-left rectangle
        channels = pixels.reshape(-1, 3)
        flat = components.ravel()
        sums = np.stack([np.bincount(flat, weights=channels[:, c], minlength=len(stats)) for c in range(3)], axis=1)
        squares = np.stack([np.bincount(flat, weights=channels[:, c] ** 2, minlength=len(stats)) for c in range(3)], axis=1)
        # The edge band took a pixel off each side of an area: boxes are grown back by it.
        x, y = np.maximum(0, x[big] - 1), np.maximum(0, y[big] - 1)
        w, h = np.minimum(cols, stats[big, 0] + w[big] + 1) - x, np.minimum(rows, stats[big, 1] + h[big] + 1) - y
        size, sums, squares = size[big], sums[big], squares[big]
        # The ring: the box grown by RING pixels (clipped to the picture) less the component itself.
        rx0, ry0 = np.maximum(0, x - self.RING), np.maximum(0, y - self.RING)
        rx1, ry1 = np.minimum(cols, x + w + self.RING), np.minimum(rows, y + h + self.RING)
        window = integral[ry1, rx1] - integral[ry0, rx1] - integral[ry1, rx0] + integral[ry0, rx0]
        ring = (rx1 - rx0) * (ry1 - ry0) - size
        inside_mean = sums / size[:, None]
        # Standard deviation of the area's colour (the largest of the channels'): a painted object is
        # one colour plus JPEG noise; a flat-looking part of a photograph is a slow gradient.
        spread = np.sqrt(np.maximum(0.0, squares / size[:, None] - inside_mean ** 2)).max(axis=1)
        ring_mean = (window - sums) / np.maximum(ring, 1)[:, None]
        # No ring at all (the component is the whole picture): no contrast.
        contrast = np.where(ring > 0, np.linalg.norm(inside_mean - ring_mean, axis=1), 0.0)
        fill = size / (w * h)
        aspect = np.maximum(w, h) / np.maximum(1, np.minimum(w, h))
        small = size < self.SMALL_FRACTION * area
        at_edge = (x == 0) | (y == 0) | (x + w == cols) | (y + h == rows)
        needed = np.where(small, self.SMALL_MIN_CONTRAST, self.MIN_CONTRAST)
        keep = ((contrast >= needed) & (fill >= self.MIN_FILL) & (aspect <= self.MAX_ASPECT) & ~(small & at_edge)
                & (spread <= self.MAX_SPREAD))
        boxes = np.stack([
            np.maximum(0, np.floor(x / scale)), np.maximum(0, np.floor(y / scale)),
            np.minimum(width, np.ceil((x + w) / scale)), np.minimum(height, np.ceil((y + h) / scale)),
        ], axis=1).astype(np.int64)[keep]
        return [Proposal(box=tuple(int(v) for v in box), area_fraction=float(part), score=min(1.0, float(c) / 255.0))
                for box, part, c in zip(boxes, size[keep] / area, contrast[keep])]


def load_proposer() -> RegionProposer:
    if settings.REGION_PROPOSER == "colour":
        return ColourProposer(min_area_fraction=settings.REGION_MIN_AREA_FRACTION)
    if settings.REGION_PROPOSER == "colour+objectness":
        from search.objectness import JoinedProposer, ObjectnessProposer, load_objectness

        return JoinedProposer(ColourProposer(min_area_fraction=settings.REGION_MIN_AREA_FRACTION),
                              ObjectnessProposer(load_objectness(settings.OBJECTNESS_WEIGHTS),
                                                 min_area_fraction=settings.REGION_MIN_AREA_FRACTION))
    if settings.REGION_PROPOSER != "sam":
        raise ModelUnavailable(f"REGION_PROPOSER={settings.REGION_PROPOSER!r}; choose sam, colour or colour+objectness.")
    model = load_sam_model(model_type=settings.SAM_MODEL_TYPE, checkpoint=settings.SAM_CHECKPOINT)
    logger.info("Loaded SAM %s on %s", settings.SAM_MODEL_TYPE, torch_device())
    return SamProposer(
        model,
        points_per_side=settings.SAM_POINTS_PER_SIDE,
        points_per_batch=settings.SAM_POINTS_PER_BATCH,
        pred_iou_thresh=settings.SAM_PRED_IOU_THRESH,
        stability_score_thresh=settings.SAM_STABILITY_SCORE_THRESH,
        box_nms_thresh=settings.SAM_BOX_NMS_THRESH,
        min_mask_region_area=settings.SAM_MIN_MASK_REGION_AREA,
        max_side=settings.SAM_MAX_SIDE,
    )


