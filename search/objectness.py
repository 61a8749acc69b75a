"""A learned objectness map for the demo profile: a small fully-convolutional network that marks the
pixels inside objects, trained on generated scenes (search.demo's shapes on varied backgrounds).

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
`manage.py train_demo_proposer` retrains it in about an hour on two cores; the weights (~75 KB) are
committed beside the demo CLIP's.
"""
from __future__ import annotations

import io
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFilter

from search.loading import ModelUnavailable
from search.proposers import Proposal

OBJECTNESS_WEIGHTS = Path(__file__).resolve().parent / "model_weights" / "imgsearch-objectness.pt"
TRAIN_SEED = 4321  # the held-out scenes and the tests use other seeds
WORK_SIDE = 640  # the map is computed on a copy at most this large (at one level, 320 px: 91% of tuning objects found, 640: 92%)
TRAIN_SIZE = (320, 240)  # generated training scenes
# Where two objects touch, training targets leave a gap of this many pixels on each side, so that they
# stay two areas; elsewhere a target is the whole visible shape (a thin star arm included).
CONTACT_GAP = 2
SPECKLED_SHARE = 0.15  # of training scenes


def _network():
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


def _tensor(rgb: np.ndarray):
    import torch

    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255 - 0.5).permute(2, 0, 1)  # a new array: writable


def speckled_background(width: int, height: int, rng: np.random.Generator) -> tuple[PILImage.Image, np.ndarray]:
    """A plain colour strewn with specks of any colour (a night sky's stars, gravel, confetti, dust),
    and that plain colour. A shape of the plain colour shows only as a patch without specks."""
    base = rng.integers(0, 256, 3).astype(np.float32) * (0.2 if rng.random() < 0.5 else 1.0)
    scale = int(rng.integers(1, 4))  # specks of 1-3 px
    small = (max(1, height // scale), max(1, width // scale))
    specks = rng.random(small) < 10 ** rng.uniform(-2.5, -0.7)
    pixels = np.broadcast_to(base, small + (3,)).copy()
    pixels[specks] = rng.integers(0, 256, (int(specks.sum()), 3))
    image = PILImage.fromarray(pixels.astype(np.uint8)).resize((width, height), PILImage.Resampling.NEAREST)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
    noise = rng.normal(0, rng.uniform(0, 4), (height, width, 1))
    return PILImage.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)), base


def training_scene(rng: np.random.Generator, photos: list[PILImage.Image], *,
                   speckled_share: float = SPECKLED_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """A JPEG'd scene of 1-6 shapes (any of the 32 classes, colours a little off, turned, 5-40% of the
    short side, some cut by the picture's edge, later ones covering earlier ones) on a varied or (one
    time in `speckled_share`) a speckled background, and its training_target. On a speckled one, half of
    the shapes take the background's plain colour: an object can differ from its surroundings by
    texture alone."""
    from search import demo

    width, height = TRAIN_SIZE
    plain = None
    if rng.random() < speckled_share:
        image, plain = speckled_background(width, height, rng)
    else:
        image = demo.varied_background(width, height, rng, photos).convert("RGB")
    masks: list[np.ndarray] = []
    for _ in range(int(rng.integers(1, 7))):
        colour, shape = demo.CLASSES[int(rng.integers(len(demo.CLASSES)))]
        if plain is not None and rng.random() < 0.5:
            like, jitter = plain, 3.0  # the background's own colour: only the specks it covers show it
        else:
            like, jitter = np.array(demo.COLOURS[colour]), 10.0
        fill = tuple(int(v) for v in np.clip(like + rng.normal(0, jitter, 3), 0, 255))
        layer = demo.rotated_shape(shape, fill, max(6, int(rng.uniform(0.05, 0.4) * height)), float(rng.uniform(0, 360)))
        x = int(rng.integers(-layer.width // 4, width - layer.width * 3 // 4))
        y = int(rng.integers(-layer.height // 4, height - layer.height * 3 // 4))
        image.paste(layer, (x, y), layer)
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + layer.width), min(height, y + layer.height)
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((height, width), bool)
        mask[y0:y1, x0:x1] = np.asarray(layer.getchannel("A"))[y0 - y:y1 - y, x0 - x:x1 - x] > 127
        for earlier in masks:
            earlier &= ~mask
        masks.append(mask)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(50, 96)))
    return np.asarray(PILImage.open(buffer).convert("RGB")), training_target(masks, (height, width))


def training_target(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """1 on each shape's visible pixels (`masks`, disjoint) except within CONTACT_GAP pixels of
    another shape, else 0: whole shapes, thin parts included, and touching shapes kept apart."""
    import cv2

    target = np.zeros(shape, np.float32)
    kernel = np.ones((2 * CONTACT_GAP + 1,) * 2, np.uint8)
    for i, mask in enumerate(masks):
        others = np.zeros(shape, np.uint8)
        for j, other in enumerate(masks):
            if j != i:
                others |= other.astype(np.uint8)
        target[mask & ~cv2.dilate(others, kernel).astype(bool)] = 1.0
    return target


@dataclass(frozen=True)
class TrainingReport:
    steps: int
    seconds: float
    final_loss: float


def train_objectness(*, steps: int, output: Path, scenes: int = 3000, batch_size: int = 16, crop: int = 128,
                     seed: int = TRAIN_SEED, log: Callable[[str], None] = print) -> TrainingReport:
    """Train the objectness network from scratch on `scenes` generated scenes (random `crop` x `crop`
    parts of them, `batch_size` a step) and save float16 weights to `output`."""
    import torch
    from torch.nn import functional as F

    from search import demo

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    photos = demo.training_photographs()
    data = [training_scene(rng, photos) for _ in range(scenes)]
    net = _network()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=max(1, steps))
    width, height = TRAIN_SIZE
    crop = min(crop, width, height)
    started, loss_value = time.perf_counter(), float("nan")
    net.train()
    for step in range(steps):
        pictures, targets = [], []
        for _ in range(batch_size):
            rgb, target = data[int(rng.integers(len(data)))]
            x, y = int(rng.integers(0, width - crop + 1)), int(rng.integers(0, height - crop + 1))
            pictures.append(_tensor(rgb[y:y + crop, x:x + crop]))
            targets.append(torch.from_numpy(target[y:y + crop, x:x + crop].copy()))
        # Object pixels are ~4% of a scene: weighted up so that the network does not settle for "none".
        loss = F.binary_cross_entropy_with_logits(net(torch.stack(pictures)), torch.stack(targets),
                                                  pos_weight=torch.tensor(2.0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_value = loss.item()
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step:4d}/{steps}  loss {loss_value:.3f}  {time.perf_counter() - started:.0f} s")
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({key: value.half() for key, value in net.state_dict().items()}, output)
    return TrainingReport(steps=steps, seconds=time.perf_counter() - started, final_loss=loss_value)


def load_objectness(weights: Path):
    """The trained network, or ModelUnavailable saying how to get its weights."""
    import torch

    weights = Path(weights)
    if not weights.is_file():
        raise ModelUnavailable(f"The objectness weights are missing (looked for {weights}). "
                               f"Run `python manage.py train_demo_proposer` to train them (minutes on a CPU).")
    net = _network()
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
        small = image.convert("RGB").resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                            PILImage.Resampling.BILINEAR)
        with torch.inference_mode():
            pixels = _tensor(np.asarray(small))[None].contiguous(memory_format=torch.channels_last)
            return scale, torch.sigmoid(self.net(pixels))[0].numpy()

    def areas(self, probability: np.ndarray) -> list[tuple[int, int, int, int, int, float]]:
        """(x, y, width, height, pixels, mean probability) of each area kept, on the map's grid."""
        import cv2

        smallest = max(1, math.ceil(self.min_area_fraction * probability.size))
        found = []  # per level: {label: (x, y, width, height, pixels, mean)}, areas of a proposal's size
        parts = []  # per level: {label: its areas of a proposal's size one level up}
        below = None
        for level in self.LEVELS:
            count, labels, stats, _ = cv2.connectedComponentsWithStats((probability > level).astype(np.uint8), connectivity=4)
            means = np.bincount(labels.ravel(), weights=probability.ravel(), minlength=count) / np.maximum(stats[:, 4], 1)
            found.append({label: (*(int(v) for v in stats[label]), float(means[label]))
                          for label in np.flatnonzero(stats[:, 4] >= smallest) if label > 0})
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
            box = (max(0, math.floor((x - grow) / scale)), max(0, math.floor((y - grow) / scale)),
                   min(width, math.ceil((x + w + grow) / scale)), min(height, math.ceil((y + h + grow) / scale)))
            proposals.append(Proposal(box=box, area_fraction=size / probability.size, score=mean))
        return proposals


class JoinedProposer:
    """The first proposer's proposals, and the second's where the first has none like them: the second
    fills the first's gaps without boxing its finds again. Like: a box IoU of SAME_OBJECT_IOU or more,
    or a part of one (PART_INSIDE of its box inside one at most PART_OF times larger: the network
    splits a shape much larger than those it trained on, which the colour proposer found whole).
    Their scores are not comparable, so the first's are put above the second's (each halved, the
    first's plus one half).

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
        from search.proposers import box_iou

        def scaled(proposals: list[Proposal], offset: float) -> list[Proposal]:
            return [Proposal(box=p.box, area_fraction=p.area_fraction, score=offset + 0.5 * min(1.0, p.score)) for p in proposals]

        def like(p: Proposal, q: Proposal) -> bool:
            if box_iou(p.box, q.box) >= self.SAME_OBJECT_IOU:
                return True
            inside = max(0, min(p.box[2], q.box[2]) - max(p.box[0], q.box[0])) * max(0, min(p.box[3], q.box[3]) - max(p.box[1], q.box[1]))
            area_p, area_q = _area(p.box), _area(q.box)
            return inside >= self.PART_INSIDE * area_p and area_q <= self.PART_OF * area_p

        first = self.first.propose(image)
        second = [p for p in self.second.propose(image) if not any(like(p, q) for q in first)]
        return scaled(first, 0.5) + scaled(second, 0.0)


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])
