"""Automatic tags: zero-shot CLIP labels for the whole photo and each object, from a vocabulary file.

The vocabulary (TAG_VOCABULARY) is one label per line; the prompt (TAG_PROMPT, e.g. "a photo of a
{}") turns each into text, embedded once per model and vocabulary and kept for the process. A
region gets each label whose probability — softmax over the vocabulary at the model's own logit
scale, CLIP's zero-shot rule — is at least TAG_MIN_PROBABILITY. Lines starting with "!" are labels
that take part in the softmax but are never stored ("!background"): they soak up what is nothing
in particular. Tags are made in the pipeline with the regions (so a new model, which reprocesses
photos, tags them anew) and `manage.py retag` remakes them from stored vectors after a vocabulary
change. A person's tags (gallery/tags.py) are never touched here.
"""

import functools
import hashlib
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from gallery.models import Region, Tag


@functools.lru_cache(maxsize=4)
def _vocabulary(path: str, mtime: float) -> tuple[tuple[str, ...], np.ndarray]:
    lines = [line.strip() for line in Path(path).read_text().splitlines()]
    labels = tuple(line for line in lines if line and not line.startswith("#"))
    if not labels:
        raise ValueError(f"The tag vocabulary {path} has no labels.")
    return labels, np.array([label.startswith("!") for label in labels])


def vocabulary() -> tuple[tuple[str, ...], np.ndarray]:
    """(labels, which are "none" labels), from TAG_VOCABULARY."""
    path = Path(settings.TAG_VOCABULARY)
    return _vocabulary(str(path), path.stat().st_mtime)


_label_vectors: dict[tuple[str, str], np.ndarray] = {}


def label_vectors(clip) -> np.ndarray:
    """The vocabulary's text vectors for this model: computed once per model and vocabulary."""
    labels, _ = vocabulary()
    key = (clip.name, hashlib.sha256("\n".join((settings.TAG_PROMPT,) + labels).encode()).hexdigest())
    if key not in _label_vectors:
        _label_vectors[key] = clip.embed_texts([settings.TAG_PROMPT.format(label.lstrip("!")) for label in labels])
    return _label_vectors[key]


def zero_shot(vectors: np.ndarray, clip) -> list[list[tuple[str, float]]]:
    """For each row of `vectors` (image-side CLIP vectors), its (label, probability) pairs at or over
    TAG_MIN_PROBABILITY, most probable first."""
    labels, none = vocabulary()
    if len(vectors) == 0:
        return []
    logits = clip.logit_scale * (np.asarray(vectors, dtype=np.float32) @ label_vectors(clip).T)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    found = []
    for row in probabilities:
        order = np.argsort(-row)
        found.append(
            [(labels[i], float(row[i])) for i in order if row[i] >= settings.TAG_MIN_PROBABILITY and not none[i]]
        )
    return found


def model_tags(regions: list[Region], found: list[list[tuple[str, float]]]) -> list[Tag]:
    """Unsaved model tags for saved `regions`, from zero_shot's answer for their vectors."""
    return [
        Tag(image_id=region.image_id, region=region, label=label, source=Tag.Source.MODEL, score=probability)
        for region, labels in zip(regions, found, strict=True)
        for label, probability in labels
    ]


def retag(images, clip) -> int:
    """Remake the model's tags of `images` from their stored vectors (those the current model made)."""
    made = 0
    for image in images.iterator(chunk_size=200):
        regions = list(image.regions.filter(embedding_model=clip.name))
        found = zero_shot(np.stack([r.vector for r in regions]), clip) if regions else []
        with transaction.atomic():
            Tag.objects.filter(image=image, source=Tag.Source.MODEL).delete()
            made += len(Tag.objects.bulk_create(model_tags(regions, found)))
    return made
