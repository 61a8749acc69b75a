"""Region proposers: find the objects in a photo worth a search result of their own.

A proposer takes an RGB image and returns boxes in that image's pixels: Segment Anything
(search.vision.sam), the weight-free ColourProposer here, the learned objectness map
(search.vision.objectness), or two of them joined (JoinedProposer). All share `filter_proposals`.
"""

from dataclasses import dataclass
from itertools import zip_longest
from typing import Protocol

import numpy as np
from PIL import Image as PILImage

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


def with_context(box: tuple[int, int, int, int], width: int, height: int, share: float) -> tuple[int, int, int, int]:
    """`box` grown by `share` of its width and height on every side, inside the image: what CLIP sees
    of a region. A tight box around a square is one flat colour, as like a patch of background as the
    square; a margin of its surroundings says "a thing on something" (REGION_CROP_CONTEXT)."""
    x1, y1, x2, y2 = box
    dx, dy = round((x2 - x1) * share), round((y2 - y1) * share)
    return max(0, x1 - dx), max(0, y1 - dy), min(width, x2 + dx), min(height, y2 + dy)


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
        _, components, stats, _ = cv2.connectedComponentsWithStats(
            (spread <= self.EDGE).astype(np.uint8), connectivity=4
        )
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
        squares = np.stack(
            [np.bincount(flat, weights=channels[:, c] ** 2, minlength=len(stats)) for c in range(3)], axis=1
        )
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
        spread = np.sqrt(np.maximum(0.0, squares / size[:, None] - inside_mean**2)).max(axis=1)
        ring_mean = (window - sums) / np.maximum(ring, 1)[:, None]
        # No ring at all (the component is the whole picture): no contrast.
        contrast = np.where(ring > 0, np.linalg.norm(inside_mean - ring_mean, axis=1), 0.0)
        fill = size / (w * h)
        aspect = np.maximum(w, h) / np.maximum(1, np.minimum(w, h))
        small = size < self.SMALL_FRACTION * area
        at_edge = (x == 0) | (y == 0) | (x + w == cols) | (y + h == rows)
        needed = np.where(small, self.SMALL_MIN_CONTRAST, self.MIN_CONTRAST)
        keep = (
            (contrast >= needed)
            & (fill >= self.MIN_FILL)
            & (aspect <= self.MAX_ASPECT)
            & ~(small & at_edge)
            & (spread <= self.MAX_SPREAD)
        )
        boxes = np.stack(
            [
                np.maximum(0, np.floor(x / scale)),
                np.maximum(0, np.floor(y / scale)),
                np.minimum(width, np.ceil((x + w) / scale)),
                np.minimum(height, np.ceil((y + h) / scale)),
            ],
            axis=1,
        ).astype(np.int64)[keep]
        return [
            Proposal(box=tuple(int(v) for v in box), area_fraction=float(part), score=min(1.0, float(c) / 255.0))
            for box, part, c in zip(boxes, size[keep] / area, contrast[keep], strict=True)
        ]


class JoinedProposer:
    """The first proposer's proposals, and the second's where the first has none like them: the second
    fills the first's gaps without boxing its finds again. Like: a box IoU of SAME_OBJECT_IOU or more,
    or a part of one (PART_INSIDE of its box inside one at most PART_OF times larger: the network
    splits a shape much larger than those it trained on, which the colour proposer found whole).
    Their scores are not comparable, so they take turns, each proposer's best first: the first's
    best, the second's best, the first's second best, and so on (a Proposal's score is then its place
    in that order, 1 down to 0), so that REGION_MAX_PER_IMAGE keeps the best of both. Ranking all the
    first's above the second's let a background of flat cells or tiles, whose every piece the colour
    proposer boxes, fill the 24 places before the network's objects came in.

    SAME_OBJECT_IOU is strict (0.7): where a shape's colour area leaks a little into the background,
    the colour box still overlaps the network's by 0.5-0.7 but boxes the shape worse; keeping both
    found 0.9% more of the tuning objects for 0.2 more regions per photograph."""

    SAME_OBJECT_IOU = 0.7
    PART_INSIDE = 0.9
    PART_OF = 4.0

    def __init__(self, first, second):
        self.first, self.second = first, second
        self.name = f"{first.name}+{second.name}"

    def propose_batch(self, images: list[PILImage.Image]) -> list[list[Proposal]]:
        return [self.propose(image) for image in images]

    def propose(self, image: PILImage.Image) -> list[Proposal]:
        def like(p: Proposal, q: Proposal) -> bool:
            if box_iou(p.box, q.box) >= self.SAME_OBJECT_IOU:
                return True
            inside = max(0, min(p.box[2], q.box[2]) - max(p.box[0], q.box[0])) * max(
                0, min(p.box[3], q.box[3]) - max(p.box[1], q.box[1])
            )
            area_p, area_q = _area(p.box), _area(q.box)
            return inside >= self.PART_INSIDE * area_p and area_q <= self.PART_OF * area_p

        first = self.first.propose(image)
        second = [p for p in self.second.propose(image) if not any(like(p, q) for q in first)]
        turns = zip_longest(*(sorted(found, key=lambda p: -p.score) for found in (first, second)))
        order = [p for turn in turns for p in turn if p is not None]
        return [
            Proposal(box=p.box, area_fraction=p.area_fraction, score=1 - place / len(order))
            for place, p in enumerate(order)
        ]


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])
