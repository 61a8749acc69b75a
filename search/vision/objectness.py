"""A learned objectness map for the demo profile: a small fully-convolutional network that marks the
pixels inside objects, trained on generated scenes (search/vision/training/objectness.py: the demo's shapes on varied
backgrounds).

The colour proposer needs an edge all round an object: where a shape meets a background of a
similar colour for a few pixels (a red triangle on a red flag, a blue star whose tip blurs into grey)
its flat area leaks into the background and it is lost. The network sees the shape, not one pixel
step, so it finds many of those; trained also on speckled backgrounds with shapes of their plain
colour, it finds some shapes that differ from their surroundings by texture alone (a black square on
a starry sky). It also marks some flat patches of a photograph (a cheek, a helmet's glare), which its
stricter per-area rules drop. The demo profile joins both proposers' areas
(REGION_PROPOSER=colour+objectness); what it finds is measured on held-out photographs
(bench/proposer_bench.py, tests/search/test_heldout_quality.py).

It runs on the picture at up to WORK_SIDE (640) px: ~0.1 s for a 640x480 picture on two cores in
the channels-last layout (0.17 s in PyTorch's default one). Joined with the colour proposer it finds
94% of the objects in 120 tuning scenes (the colour proposer alone 84%; a single 0.5 level 92%;
bench/README.md).
`manage.py train_demo_proposer` (search.vision.training.objectness) retrains it in about an hour on two cores; the weights (~75 KB) are
committed beside the demo CLIP's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from search.vision.proposers import Proposal
from search.vision.runtime import ModelUnavailable

OBJECTNESS_WEIGHTS = Path(__file__).resolve().parent / "model_weights" / "imgsearch-objectness.pt"
WORK_SIDE = 640  # the map is computed on a copy at most this large (at one level, 320 px: 91% of tuning objects found, 640: 92%)


def network():
    """Built on first use: torch is imported by the worker, never by the web processes."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class ObjectnessNet(nn.Module):
        """Full-resolution features, a half-resolution context path with dilated convolutions
        (a receptive field of ~130 pixels: a whole object and its surroundings), joined again."""

        def __init__(self, width: int = 24):
            super().__init__()
            self.fine = nn.Conv2d(3, 16, 3, padding=1)
            self.down = nn.Conv2d(16, width, 3, stride=2, padding=1)
            self.context = nn.ModuleList([nn.Conv2d(width, width, 3, padding=r, dilation=r) for r in (1, 2, 4, 8, 16)])
            self.join = nn.Conv2d(width + 16, 16, 3, padding=1)
            self.out = nn.Conv2d(16, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            fine = F.relu(self.fine(x))
            coarse = F.relu(self.down(fine))
            for conv in self.context:
                coarse = F.relu(conv(coarse)) + coarse
            coarse = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
            return self.out(F.relu(self.join(torch.cat([fine, coarse], 1))))[:, 0]  # logits

    return ObjectnessNet()


def picture_tensor(rgb: np.ndarray):
    import torch

    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255 - 0.5).permute(2, 0, 1)  # a new array: writable


def load_objectness(weights: Path):
    """The trained network, or ModelUnavailable saying how to get its weights."""
    import torch

    weights = Path(weights)
    if not weights.is_file():
        raise ModelUnavailable(
            f"The objectness weights are missing (looked for {weights}). "
            f"Run `python manage.py train_demo_proposer` to train them (minutes on a CPU)."
        )
    net = network()
    try:
        net.load_state_dict({key: value.float() for key, value in torch.load(weights, map_location="cpu").items()})
    except Exception as error:
        raise ModelUnavailable(f"The objectness weights {weights} could not be loaded: {error}") from error
    # Channels-last: oneDNN's faster convolution layout on CPU, half the time of the default at 640 px
    # (0.15 -> 0.08 s), the same map to 1e-6.
    return net.eval().to(memory_format=torch.channels_last)


class ObjectnessProposer:
    """Proposals from the objectness map: each connected area of pixels the network marks, kept when
    the network is sure of it on the whole (its mean probability) and it is not a long strip.

    An area is looked at again at the next of LEVELS when it fails those checks or falls apart there
    into two or more areas of a proposal's size: where a black shape lies on a dark part of a
    photograph, the map's halo joins them at 0.5 and only the shape stays above 0.7."""

    name = "objectness"
    LEVELS = (0.5, 0.7)  # a pixel belongs to an object above the first; see the class's note
    MIN_MEAN = 0.85  # an area's mean probability: the flat patches of photographs stay under it
    MIN_PART_MEAN = 0.9  # the same for an area found above a higher level: it shows less of its halo
    MAX_ASPECT = 2.5

    def __init__(self, net, *, min_area_fraction: float = 0.0):
        self.net = net
        self.min_area_fraction = min_area_fraction

    def propose_batch(self, images: list[PILImage.Image]) -> list[list[Proposal]]:
        return [self.propose(image) for image in images]

    def probabilities(self, image: PILImage.Image) -> tuple[float, np.ndarray]:
        """(scale, the map on a copy at most WORK_SIDE large)."""
        import torch

        width, height = image.size
        scale = min(1.0, WORK_SIDE / max(width, height))
        small = image.convert("RGB").resize(
            (max(1, round(width * scale)), max(1, round(height * scale))), PILImage.Resampling.BILINEAR
        )
        with torch.inference_mode():
            pixels = picture_tensor(np.asarray(small))[None].contiguous(memory_format=torch.channels_last)
            return scale, torch.sigmoid(self.net(pixels))[0].numpy()

    def areas(self, probability: np.ndarray) -> list[tuple[int, int, int, int, int, float]]:
        """(x, y, width, height, pixels, mean probability) of each area kept, on the map's grid."""
        import cv2

        smallest = max(1, math.ceil(self.min_area_fraction * probability.size))
        found = []  # per level: {label: (x, y, width, height, pixels, mean)}, areas of a proposal's size
        parts = []  # per level: {label: its areas of a proposal's size one level up}
        below = None
        for level in self.LEVELS:
            count, labels, stats, _ = cv2.connectedComponentsWithStats(
                (probability > level).astype(np.uint8), connectivity=4
            )
            means = np.bincount(labels.ravel(), weights=probability.ravel(), minlength=count) / np.maximum(
                stats[:, 4], 1
            )
            found.append(
                {
                    label: (*(int(v) for v in stats[label]), float(means[label]))
                    for label in np.flatnonzero(stats[:, 4] >= smallest)
                    if label > 0
                }
            )
            if below is not None:  # an area above this level lies inside one area above the level below
                parent = np.zeros(count, int)
                parent[labels.ravel()] = below.ravel()
                parts.append(defaultdict(list))
                for label in found[-1]:
                    parts[-1][parent[label]].append(label)
            below = labels

        def visit(depth: int, label: int) -> list:
            x, y, w, h, size, mean = area = found[depth][label]
            split = parts[depth].get(label, []) if depth < len(parts) else []
            floor = self.MIN_MEAN if depth == 0 else self.MIN_PART_MEAN
            sure = mean >= floor and max(w, h) / max(1, min(w, h)) <= self.MAX_ASPECT
            if sure and len(split) < 2:
                return [area]
            return [kept for part in split for kept in visit(depth + 1, part)]

        return [kept for label in found[0] for kept in visit(0, label)]  # a handful: the network marks few areas

    def propose(self, image: PILImage.Image) -> list[Proposal]:
        width, height = image.size
        scale, probability = self.probabilities(image)
        grow = 1  # a pixel lost to the map's blur at the edge
        proposals = []
        for x, y, w, h, size, mean in self.areas(probability):
            box = (
                max(0, math.floor((x - grow) / scale)),
                max(0, math.floor((y - grow) / scale)),
                min(width, math.ceil((x + w + grow) / scale)),
                min(height, math.ceil((y + h + grow) / scale)),
            )
            proposals.append(Proposal(box=box, area_fraction=size / probability.size, score=mean))
        return proposals
