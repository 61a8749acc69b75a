"""Generated scenes of coloured shapes, and training the small demo CLIP on them.

Pretrained weights cannot be downloaded everywhere and random weights prove nothing about ranking,
so we train a small OpenCLIP model ourselves: real open_clip config, real tokenizer, real
contrastive loss, on pictures whose right answers we know. The same generator makes the demo
library (`manage.py load_demo`) and the scenes the retrieval tests search.
"""
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

COLOURS = {
    "red": (215, 30, 35),
    "green": (35, 160, 60),
    "blue": (35, 75, 215),
    "yellow": (240, 215, 35),
    "purple": (135, 45, 175),
    "orange": (245, 130, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle", "star")
CLASSES = [(colour, shape) for colour in COLOURS for shape in SHAPES]
CAPTION_TEMPLATES = ("a {colour} {shape}", "a photo of a {colour} {shape}", "{colour} {shape}", "a {shape} that is {colour}")

DEMO_MODEL = "imgsearch-demo"
DEMO_WEIGHTS = Path(__file__).resolve().parent / "model_weights" / f"{DEMO_MODEL}.pt"
TRAIN_SEED = 1234  # tests and the demo library use other seeds: they search scenes the model never saw


def caption(colour: str, shape: str, template: int = 0) -> str:
    return CAPTION_TEMPLATES[template].format(colour=colour, shape=shape)


@dataclass(frozen=True)
class PlacedShape:
    colour: str
    shape: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2, x2/y2 exclusive


def background(width: int, height: int, rng: np.random.Generator) -> PILImage.Image:
    """A muted, mottled texture: busy enough not to be a flat colour, dull enough not to be a shape."""
    base = rng.integers(95, 165, size=3).astype(np.float32)
    coarse = rng.normal(0, 10, size=(max(1, height // 8), max(1, width // 8), 3)).astype(np.float32)
    coarse = np.asarray(PILImage.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize(
        (width, height), PILImage.Resampling.BILINEAR), dtype=np.float32) - 128
    fine = rng.normal(0, 5, size=(height, width, 1)).astype(np.float32)
    return PILImage.fromarray(np.clip(base + coarse + fine, 0, 255).astype(np.uint8), "RGB")


def _polygon(shape: str, box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = box
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    if shape == "triangle":
        return [(cx, y1), (x2, y2), (x1, y2)]
    points = []
    for i in range(10):  # star: alternate outer and inner radius
        angle = -math.pi / 2 + i * math.pi / 5
        scale = 1.0 if i % 2 == 0 else 0.45
        points.append((cx + rx * scale * math.cos(angle), cy + ry * scale * math.sin(angle)))
    return points


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, colour: str, box: tuple[int, int, int, int]) -> None:
    fill = COLOURS[colour]
    inner = (box[0], box[1], box[2] - 1, box[3] - 1)  # PIL boxes are inclusive
    if shape == "circle":
        draw.ellipse(inner, fill=fill)
    elif shape == "square":
        draw.rectangle(inner, fill=fill)
    else:
        draw.polygon(_polygon(shape, inner), fill=fill)


def single_shape(size: int, colour: str, shape: str, rng: np.random.Generator) -> PILImage.Image:
    """One shape, 35-100% of the frame, anywhere in it: like a whole picture or a tight crop."""
    image = background(size, size, rng)
    side = int(rng.uniform(0.35, 1.0) * size)
    x, y = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
    draw_shape(ImageDraw.Draw(image), shape, colour, (x, y, x + side, y + side))
    return image


def scene(width: int, height: int, rng: np.random.Generator, *, count: int) -> tuple[PILImage.Image, list[PlacedShape]]:
    """`count` shapes of distinct classes that do not overlap, on a textured background."""
    image = background(width, height, rng)
    draw = ImageDraw.Draw(image)
    placed: list[PlacedShape] = []
    classes = rng.permutation(len(CLASSES))
    for class_index in classes:
        if len(placed) == count:
            break
        colour, shape = CLASSES[class_index]
        for _ in range(50):
            side = int(rng.uniform(0.22, 0.4) * min(width, height))
            x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            box = (x, y, x + side, y + side)
            margin = 4
            if all(box[2] + margin <= p.box[0] or p.box[2] + margin <= box[0] or
                   box[3] + margin <= p.box[1] or p.box[3] + margin <= box[1] for p in placed):
                draw_shape(draw, shape, colour, box)
                placed.append(PlacedShape(colour=colour, shape=shape, box=box))
                break
    return image, placed


# --- Training -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingReport:
    steps: int
    seconds: float
    final_loss: float
    zero_shot_accuracy: float


def zero_shot_accuracy(model, tokenizer, preprocess, *, samples_per_class: int, seed: int) -> float:
    """Share of unseen single-shape pictures whose best caption (among all 32) is the right one."""
    import torch

    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        texts = model.encode_text(tokenizer([caption(c, s) for c, s in CLASSES]))
        texts = torch.nn.functional.normalize(texts, dim=-1)
        correct = total = 0
        for class_index, (colour, shape) in enumerate(CLASSES):
            batch = torch.stack([preprocess(single_shape(64, colour, shape, rng)) for _ in range(samples_per_class)])
            features = torch.nn.functional.normalize(model.encode_image(batch), dim=-1)
            correct += int((features @ texts.T).argmax(dim=1).eq(class_index).sum())
            total += samples_per_class
    return correct / total


def train_demo_model(*, steps: int, batch_size: int, output: Path, seed: int = TRAIN_SEED,
                     log: Callable[[str], None] = print) -> TrainingReport:
    """Train imgsearch-demo from scratch on generated shapes and save float16 weights to `output`."""
    if not 2 <= batch_size <= len(CLASSES):
        raise ValueError(f"batch_size must be 2..{len(CLASSES)} (one picture per class per batch).")
    import open_clip
    import torch

    from search.clip import register_model_configs

    register_model_configs()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(DEMO_MODEL, pretrained=None)
    tokenizer = open_clip.get_tokenizer(DEMO_MODEL)
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    )
    started = time.perf_counter()
    loss_value = float("nan")
    model.train()
    for step in range(steps):
        # Distinct classes per batch: open_clip's contrastive loss treats every other pair in the
        # batch as a negative, so two pictures of the same class must not meet in one batch.
        classes = rng.choice(len(CLASSES), size=batch_size, replace=False)
        pictures = torch.stack([preprocess(single_shape(64, *CLASSES[c], rng)) for c in classes])
        tokens = tokenizer([caption(*CLASSES[c], int(rng.integers(len(CAPTION_TEMPLATES)))) for c in classes])
        image_features, text_features, logit_scale = model(pictures, tokens)
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        loss_value = float(loss)
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:4d}/{steps}  loss {loss_value:.3f}  {time.perf_counter() - started:.0f} s")
    model.eval()
    accuracy = zero_shot_accuracy(model, tokenizer, preprocess, samples_per_class=16, seed=seed + 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({key: value.half() if value.is_floating_point() else value for key, value in model.state_dict().items()}, output)
    return TrainingReport(steps=steps, seconds=time.perf_counter() - started, final_loss=loss_value, zero_shot_accuracy=accuracy)
