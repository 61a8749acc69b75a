"""Generated scenes of coloured shapes, and training the small demo CLIP on them.

Pretrained weights cannot be downloaded everywhere and random weights prove nothing about ranking,
so we train a small OpenCLIP model ourselves: real open_clip config, real tokenizer, real
contrastive loss, on pictures whose right answers we know. The same generator makes the demo
library (`manage.py load_demo`) and the scenes the retrieval tests search.
"""
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

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
IMAGE_LOSS_WEIGHT = 0.5  # of the picture-to-picture term, beside the picture-to-caption one
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


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, colour: str | tuple, box: tuple[int, int, int, int]) -> None:
    """`colour`: one of COLOURS by name, or the fill itself."""
    fill = COLOURS[colour] if isinstance(colour, str) else colour
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


# --- Training pictures ----------------------------------------------------------------------
# Scenes people upload look nothing like `background()`: photographs, gradients, stripes, clutter;
# objects turned, small, half-covered, JPEG-compressed. The model trains on crops like the ones the
# proposer and a person's drawn box cut out of such pictures, and on background patches with no
# object (hard negatives), so an object's crop outscores a patch of texture for an object's caption.
# bench/heldout.py's photographs (scikit-image's) stay out of training: they are how we measure it.

BACKGROUND_CAPTIONS = ("background", "a texture", "a patch of background", "nothing in particular")


def training_photographs() -> list[PILImage.Image]:
    """scikit-learn's two sample photographs (they ship inside its wheel): natural texture to put
    shapes on. Training only; never an evaluation photograph."""
    from sklearn.datasets import load_sample_images

    return [PILImage.fromarray(picture).convert("RGB") for picture in load_sample_images().images]


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def varied_background(width: int, height: int, rng: np.random.Generator,
                      photos: list[PILImage.Image]) -> PILImage.Image:
    """One of: the scenes' mottled texture, a gradient, stripes, smooth noise, soft blobs, or a part
    of a photograph with its colours shuffled."""
    kind = int(rng.integers(6 if photos else 5))
    if kind == 0:
        return background(width, height, rng)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.normal(0, rng.uniform(0, 12), size=(height, width, 1)).astype(np.float32)
    if kind in (1, 2):
        angle = rng.uniform(0, math.pi)
        along = xs * math.cos(angle) + ys * math.sin(angle)
        if kind == 1:
            t = (along - along.min()) / max(1e-6, float(np.ptp(along)))
        else:
            period = rng.uniform(3, 30)
            t = 0.5 + 0.5 * np.sin(2 * math.pi * along / period)
            if rng.random() < 0.5:
                t = (t > 0.5).astype(np.float32)
        pixels = _random_colour(rng) * (1 - t[..., None]) + _random_colour(rng) * t[..., None]
    elif kind == 3:
        cell = int(rng.integers(1, 17))
        coarse = rng.normal(0, rng.uniform(10, 60), size=(max(1, height // cell), max(1, width // cell), 3))
        coarse = PILImage.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize((width, height), PILImage.Resampling.BILINEAR)
        pixels = _random_colour(rng) + np.asarray(coarse, dtype=np.float32) - 128
    elif kind == 4:
        image = PILImage.new("RGB", (width, height), tuple(int(v) for v in _random_colour(rng)))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 25))):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            rx, ry = rng.uniform(2, width / 2), rng.uniform(2, height / 2)
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(int(v) for v in _random_colour(rng)))
        pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(1, 6))), dtype=np.float32)
    else:
        photo = photos[int(rng.integers(len(photos)))]
        side = rng.uniform(0.03, 0.5)
        cw, ch = max(2, int(photo.width * side)), max(2, int(photo.width * side * height / width))
        ch = min(ch, photo.height)
        x, y = int(rng.integers(0, photo.width - cw + 1)), int(rng.integers(0, photo.height - ch + 1))
        part = np.asarray(photo.crop((x, y, x + cw, y + ch)).resize((width, height), PILImage.Resampling.BICUBIC), dtype=np.float32)
        pixels = part[..., rng.permutation(3)]
        if rng.random() < 0.5:
            pixels = pixels[:, ::-1]
    return PILImage.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")


def rotated_shape(shape: str, fill: tuple[int, int, int], side: int, angle: float) -> PILImage.Image:
    """The shape filling a side x side square, turned by `angle` degrees: an RGBA layer to paste."""
    layer = PILImage.new("RGBA", (side, side), (0, 0, 0, 0))
    draw_shape(ImageDraw.Draw(layer), shape, fill + (255,), (0, 0, side, side))
    return layer.rotate(angle, resample=PILImage.Resampling.BICUBIC, expand=True)


def _jpeg(image: PILImage.Image, rng: np.random.Generator) -> PILImage.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(50, 96)))
    return PILImage.open(buffer).convert("RGB")


def object_crop(colour: str, shape: str, rng: np.random.Generator, photos: list[PILImage.Image]) -> PILImage.Image:
    """A crop around one object as a proposer or a drawn box cuts it: 20-140 px, mostly tight,
    sometimes loose, the object turned, its colour a little off, perhaps a neighbour cut off at the
    edge or lying over a corner, often JPEG."""
    width = int(rng.uniform(20, 140))
    height = max(12, int(width * rng.uniform(0.75, 1.33)))
    image = varied_background(width, height, rng, photos)
    fill = tuple(int(v) for v in np.clip(np.array(COLOURS[colour]) + rng.normal(0, 8, 3), 0, 255))
    share = rng.uniform(0.6, 1.0) if rng.random() < 0.8 else rng.uniform(0.3, 0.6)
    layer = rotated_shape(shape, fill, max(6, int(share * min(width, height))), float(rng.uniform(0, 360)))
    layer = layer.crop(layer.getchannel("A").getbbox())
    if layer.width > width or layer.height > height:
        layer.thumbnail((width, height))

    def neighbour() -> None:
        others = [k for k in CLASSES if k != (colour, shape)]
        other_colour, other_shape = others[int(rng.integers(len(others)))]
        other = rotated_shape(other_shape, COLOURS[other_colour], max(6, int(rng.uniform(0.4, 1.0) * min(width, height))),
                              float(rng.uniform(0, 360)))
        # Mostly outside: its centre on or beyond an edge, so only a part shows.
        edge = int(rng.integers(4))
        cx = {0: 0, 1: width}.get(edge, rng.uniform(0, width)) + rng.normal(0, other.width / 6)
        cy = {2: 0, 3: height}.get(edge, rng.uniform(0, height)) + rng.normal(0, other.height / 6)
        image.paste(other, (int(cx - other.width / 2), int(cy - other.height / 2)), other)

    on_top = rng.random() < 0.3
    if rng.random() < 0.35 and not on_top:
        neighbour()
    image.paste(layer, (int(rng.integers(0, width - layer.width + 1)), int(rng.integers(0, height - layer.height + 1))), layer)
    if rng.random() < 0.35 and on_top:
        neighbour()
    return _jpeg(image, rng) if rng.random() < 0.7 else image


def background_patch(rng: np.random.Generator, photos: list[PILImage.Image]) -> PILImage.Image:
    """A crop with no object in it: what a proposer cuts out of a photograph's texture."""
    width = int(rng.uniform(16, 140))
    image = varied_background(width, max(8, int(width * rng.uniform(0.5, 2.0))), rng, photos)
    return _jpeg(image, rng) if rng.random() < 0.7 else image


def training_picture(colour: str, shape: str, rng: np.random.Generator, photos: list[PILImage.Image]) -> PILImage.Image:
    """A quarter like the demo scenes' shapes (so they stay as well found), the rest varied crops."""
    if rng.random() < 0.25:
        return single_shape(64, colour, shape, rng)
    return object_crop(colour, shape, rng, photos)


# --- Training -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingReport:
    steps: int
    seconds: float
    final_loss: float
    zero_shot_accuracy: float  # on pictures like the demo scenes' shapes
    varied_accuracy: float  # on varied crops (other backgrounds, turned, JPEG)


def zero_shot_accuracy(model, tokenizer, preprocess, *, samples_per_class: int, seed: int,
                       photos: list[PILImage.Image] | None = None) -> float:
    """Share of unseen pictures of one shape whose best caption (among all 32) is the right one: the
    demo scenes' kind, or with `photos` the varied crops of training_picture's kind."""
    import torch

    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        texts = model.encode_text(tokenizer([caption(c, s) for c, s in CLASSES]))
        texts = torch.nn.functional.normalize(texts, dim=-1)
        correct = total = 0
        for class_index, (colour, shape) in enumerate(CLASSES):
            pictures = [object_crop(colour, shape, rng, photos) if photos else single_shape(64, colour, shape, rng)
                        for _ in range(samples_per_class)]
            batch = torch.stack([preprocess(picture) for picture in pictures])
            features = torch.nn.functional.normalize(model.encode_image(batch), dim=-1)
            correct += int((features @ texts.T).argmax(dim=1).eq(class_index).sum())
            total += samples_per_class
    return correct / total


def train_demo_model(*, steps: int, batch_size: int, output: Path, seed: int = TRAIN_SEED,
                     log: Callable[[str], None] = print) -> TrainingReport:
    """Train imgsearch-demo from scratch on generated shapes and save float16 weights to `output`.

    Each batch: one picture of each of `batch_size` distinct classes (training_picture) and one
    background patch captioned as background, the hard negative that teaches object captions to
    prefer objects over texture; and a second picture of each class, matched to the first."""
    if not 2 <= batch_size <= len(CLASSES):
        raise ValueError(f"batch_size must be 2..{len(CLASSES)} (one picture per class per batch).")
    import open_clip
    import torch
    import torch.nn.functional as F

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
    photos = training_photographs()
    model.train()
    for step in range(steps):
        # Distinct classes per batch: open_clip's contrastive loss treats every other pair in the
        # batch as a negative, so two pictures of the same class must not meet in one batch.
        classes = rng.choice(len(CLASSES), size=batch_size, replace=False)
        pictures = [training_picture(*CLASSES[c], rng, photos) for c in classes] + [background_patch(rng, photos)]
        others = [training_picture(*CLASSES[c], rng, photos) for c in classes]  # another picture of each class
        captions = [caption(*CLASSES[c], int(rng.integers(len(CAPTION_TEMPLATES)))) for c in classes]
        captions.append(BACKGROUND_CAPTIONS[int(rng.integers(len(BACKGROUND_CAPTIONS)))])
        features = model.encode_image(torch.stack([preprocess(picture) for picture in pictures + others]), normalize=True)
        text_features = model.encode_text(tokenizer(captions), normalize=True)
        logit_scale = model.logit_scale.exp()
        loss = loss_fn(features[: len(pictures)], text_features, logit_scale)
        # Picture to picture too: searching by a photo of a shape compares two pictures, not a
        # picture and a caption, so two pictures of a class must be closer than pictures of others.
        logits = logit_scale * features[:batch_size] @ features[len(pictures):].T
        labels = torch.arange(batch_size)
        loss = loss + IMAGE_LOSS_WEIGHT * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        loss_value = loss.item()
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:4d}/{steps}  loss {loss_value:.3f}  {time.perf_counter() - started:.0f} s")
    model.eval()
    accuracy = zero_shot_accuracy(model, tokenizer, preprocess, samples_per_class=16, seed=seed + 1)
    varied = zero_shot_accuracy(model, tokenizer, preprocess, samples_per_class=16, seed=seed + 2, photos=photos)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({key: value.half() if value.is_floating_point() else value for key, value in model.state_dict().items()}, output)
    return TrainingReport(steps=steps, seconds=time.perf_counter() - started, final_loss=loss_value,
                          zero_shot_accuracy=accuracy, varied_accuracy=varied)
