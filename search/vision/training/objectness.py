"""Training the objectness map (search.vision.objectness) on generated scenes: the demo's shapes on
varied backgrounds, and on speckled ones where a shape differs from its surroundings by texture
alone. `manage.py train_demo_proposer` runs train_objectness (about an hour on two CPU cores).
"""

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFilter

from search.vision.objectness import network, picture_tensor
from search.vision.training.demo import CLASSES, COLOURS, rotated_shape, training_photographs, varied_background

TRAIN_SEED = 4321  # the held-out scenes and the tests use other seeds
TRAIN_SIZE = (320, 240)  # generated training scenes
# Where two objects touch, training targets leave a gap of this many pixels on each side, so that they
# stay two areas; elsewhere a target is the whole visible shape (a thin star arm included).
CONTACT_GAP = 2
SPECKLED_SHARE = 0.15  # of training scenes


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


def training_scene(
    rng: np.random.Generator, photos: list[PILImage.Image], *, speckled_share: float = SPECKLED_SHARE
) -> tuple[np.ndarray, np.ndarray]:
    """A JPEG'd scene of 1-6 shapes (any of the 32 classes, colours a little off, turned, 5-40% of the
    short side, some cut by the picture's edge, later ones covering earlier ones) on a varied or (one
    time in `speckled_share`) a speckled background, and its training_target. On a speckled one, half of
    the shapes take the background's plain colour: an object can differ from its surroundings by
    texture alone."""
    width, height = TRAIN_SIZE
    plain = None
    if rng.random() < speckled_share:
        image, plain = speckled_background(width, height, rng)
    else:
        image = varied_background(width, height, rng, photos).convert("RGB")
    masks: list[np.ndarray] = []
    for _ in range(int(rng.integers(1, 7))):
        colour, shape = CLASSES[int(rng.integers(len(CLASSES)))]
        if plain is not None and rng.random() < 0.5:
            like, jitter = plain, 3.0  # the background's own colour: only the specks it covers show it
        else:
            like, jitter = np.array(COLOURS[colour]), 10.0
        fill = tuple(int(v) for v in np.clip(like + rng.normal(0, jitter, 3), 0, 255))
        layer = rotated_shape(shape, fill, max(6, int(rng.uniform(0.05, 0.4) * height)), float(rng.uniform(0, 360)))
        x = int(rng.integers(-layer.width // 4, width - layer.width * 3 // 4))
        y = int(rng.integers(-layer.height // 4, height - layer.height * 3 // 4))
        image.paste(layer, (x, y), layer)
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + layer.width), min(height, y + layer.height)
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((height, width), bool)
        mask[y0:y1, x0:x1] = np.asarray(layer.getchannel("A"))[y0 - y : y1 - y, x0 - x : x1 - x] > 127
        for earlier in masks:  # a later shape covers the earlier ones
            np.logical_and(earlier, ~mask, out=earlier)
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


def train_objectness(
    *,
    steps: int,
    output: Path,
    scenes: int = 3000,
    batch_size: int = 16,
    crop: int = 128,
    seed: int = TRAIN_SEED,
    log: Callable[[str], None] = print,
) -> TrainingReport:
    """Train the objectness network from scratch on `scenes` generated scenes (random `crop` x `crop`
    parts of them, `batch_size` a step) and save float16 weights to `output`."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    photos = training_photographs()
    data = [training_scene(rng, photos) for _ in range(scenes)]
    net = network()
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
            pictures.append(picture_tensor(rgb[y : y + crop, x : x + crop]))
            targets.append(torch.from_numpy(target[y : y + crop, x : x + crop].copy()))
        # Object pixels are ~4% of a scene: weighted up so that the network does not settle for "none".
        loss = F.binary_cross_entropy_with_logits(
            net(torch.stack(pictures)), torch.stack(targets), pos_weight=torch.tensor(2.0)
        )
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
