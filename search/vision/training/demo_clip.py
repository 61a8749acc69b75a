"""Training the small demo CLIP on generated shapes.

Pretrained weights cannot be downloaded everywhere and random weights prove nothing about ranking,
so we train a small OpenCLIP model ourselves: real open_clip config, real tokenizer, real
contrastive loss, on pictures whose right answers we know (search/vision/training/demo.py).
`manage.py train_demo_model` runs train_demo_model.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from search.vision.clip import register_model_configs
from search.vision.training.demo import (
    BACKGROUND_CAPTIONS,
    CAPTION_TEMPLATES,
    CLASSES,
    background_patch,
    caption,
    object_crop,
    single_shape,
    training_photographs,
    training_picture,
)

DEMO_MODEL = "imgsearch-demo"
DEMO_WEIGHTS = Path(__file__).resolve().parents[1] / "model_weights" / f"{DEMO_MODEL}.pt"
IMAGE_LOSS_WEIGHT = 0.5  # of the picture-to-picture term, beside the picture-to-caption one
TRAIN_SEED = 1234  # tests and the demo library use other seeds: they search scenes the model never saw


@dataclass(frozen=True)
class TrainingReport:
    steps: int
    seconds: float
    final_loss: float
    zero_shot_accuracy: float  # on pictures like the demo scenes' shapes
    varied_accuracy: float  # on varied crops (other backgrounds, turned, JPEG)


def zero_shot_accuracy(
    model, tokenizer, preprocess, *, samples_per_class: int, seed: int, photos: list[PILImage.Image] | None = None
) -> float:
    """Share of unseen pictures of one shape whose best caption (among all 32) is the right one: the
    demo scenes' kind, or with `photos` the varied crops of training_picture's kind."""
    import torch

    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        texts = model.encode_text(tokenizer([caption(c, s) for c, s in CLASSES]))
        texts = torch.nn.functional.normalize(texts, dim=-1)
        correct = total = 0
        for class_index, (colour, shape) in enumerate(CLASSES):
            pictures = [
                object_crop(colour, shape, rng, photos) if photos else single_shape(64, colour, shape, rng)
                for _ in range(samples_per_class)
            ]
            batch = torch.stack([preprocess(picture) for picture in pictures])
            features = torch.nn.functional.normalize(model.encode_image(batch), dim=-1)
            correct += int((features @ texts.T).argmax(dim=1).eq(class_index).sum())
            total += samples_per_class
    return correct / total


def train_demo_model(
    *, steps: int, batch_size: int, output: Path, seed: int = TRAIN_SEED, log: Callable[[str], None] = print
) -> TrainingReport:
    """Train imgsearch-demo from scratch on generated shapes and save float16 weights to `output`.

    Each batch: one picture of each of `batch_size` distinct classes (training_picture) and one
    background patch captioned as background, the hard negative that teaches object captions to
    prefer objects over texture; and a second picture of each class, matched to the first."""
    if not 2 <= batch_size <= len(CLASSES):
        raise ValueError(f"batch_size must be 2..{len(CLASSES)} (one picture per class per batch).")
    import open_clip
    import torch
    import torch.nn.functional as F

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
        features = model.encode_image(
            torch.stack([preprocess(picture) for picture in pictures + others]), normalize=True
        )
        text_features = model.encode_text(tokenizer(captions), normalize=True)
        logit_scale = model.logit_scale.exp()
        loss = loss_fn(features[: len(pictures)], text_features, logit_scale)
        # Picture to picture too: searching by a photo of a shape compares two pictures, not a
        # picture and a caption, so two pictures of a class must be closer than pictures of others.
        logits = logit_scale * features[:batch_size] @ features[len(pictures) :].T
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
    torch.save(
        {key: value.half() if value.is_floating_point() else value for key, value in model.state_dict().items()}, output
    )
    return TrainingReport(
        steps=steps,
        seconds=time.perf_counter() - started,
        final_loss=loss_value,
        zero_shot_accuracy=accuracy,
        varied_accuracy=varied,
    )
