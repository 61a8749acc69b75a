"""Which CLIP model is configured: the name stored with every vector, and its dimension.

Read from settings and the model's config file alone, without importing torch or open_clip: the
index, the query service and web processes that only search stored vectors need to know which
vectors are theirs without loading a model. The config files are the ones open_clip itself reads
(its package's model_configs/ and ours beside this file, ours first, as open_clip's registry
lets a later directory win); tests/search/test_models.py checks that the dimension agrees with
open_clip.get_model_config for every profile.
"""

import functools
import importlib.util
import json
import os
from pathlib import Path

from django.conf import settings

# Our own model configs (the tiny test model, the demo model), registered with open_clip by
# search.vision.clip so they load through the same create_model_and_transforms call.
MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"


def clip_model_id() -> str:
    """The name stored with every vector: model plus weights, so vectors of different weights never mix."""
    tag = settings.CLIP_CHECKPOINT or settings.CLIP_PRETRAINED or "random"
    return f"{settings.CLIP_MODEL}/{os.path.basename(tag)}"


def current_model() -> tuple[str, int]:
    """(model name, dimension) of the configured CLIP model, without loading its weights."""
    dim = embedding_dim(settings.CLIP_MODEL)
    if dim is None:
        raise ValueError(f"CLIP_MODEL={settings.CLIP_MODEL!r} is not a model open_clip knows.")
    return clip_model_id(), dim


@functools.cache
def embedding_dim(model_name: str) -> int | None:
    """The `embed_dim` of an OpenCLIP model config by name, or None when no config has that name."""
    for directory in (MODEL_CONFIG_DIR, _open_clip_config_dir()):
        path = directory / f"{model_name}.json" if directory else None
        if path is None or not path.is_file():
            continue
        config = json.loads(path.read_text())
        if all(key in config for key in ("embed_dim", "vision_cfg", "text_cfg")):  # what open_clip accepts
            return int(config["embed_dim"])
    return None


def _open_clip_config_dir() -> Path | None:
    spec = importlib.util.find_spec("open_clip")  # locates the package without running it (and torch)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model_configs"
