"""OpenCLIP: loading the configured model and turning images and text into unit vectors."""

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from search.vision.identity import MODEL_CONFIG_DIR, clip_model_id
from search.vision.runtime import ModelUnavailable, quantize_int8, reduced_precision, seeded_random_init, torch_device

logger = logging.getLogger(__name__)

# open_clip's hub file names, newest format first (it prefers safetensors when both exist).
_HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class ClipWeights:
    path: str | None  # None: random initialisation
    preprocess: dict[str, Any]  # mean/std/interpolation overrides that belong to the weights
    quick_gelu: bool


def register_model_configs() -> None:
    """Let open_clip build our own model configs (search/vision/model_configs/) by name."""
    import open_clip

    open_clip.add_model_config(MODEL_CONFIG_DIR)


def clip_weights(*, model_name: str, pretrained: str, checkpoint: str, cache_dir: Path, download: bool) -> ClipWeights:
    """Find (or with download=True, fetch) the weights for this model; raise ModelUnavailable if absent.

    Without download the lookup is cache-only, so an offline worker fails in milliseconds with a
    sentence instead of retrying the hub for a minute.
    """
    import open_clip

    if checkpoint:
        if not os.path.isfile(checkpoint):
            raise ModelUnavailable(f"CLIP_CHECKPOINT points to {checkpoint}, which does not exist.")
        return ClipWeights(path=checkpoint, preprocess={}, quick_gelu=False)
    if not pretrained:
        return ClipWeights(path=None, preprocess={}, quick_gelu=False)
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
        raise ModelUnavailable(f"{pretrained!r} is not a pretrained tag of {model_name}; known tags: {tags}.")
    preprocess = {key: cfg[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in cfg}
    quick_gelu = bool(cfg.get("quick_gelu", False))
    if download:
        path = open_clip.download_pretrained(cfg, cache_dir=str(cache_dir))
    else:
        path = _cached_clip_file(cfg, cache_dir)
    if not path:
        raise ModelUnavailable(
            f"CLIP weights {model_name}/{pretrained} are not in {cache_dir}. Run `python manage.py "
            f"fetch_models` on a machine with internet access (then copy {cache_dir} here), or set "
            f"CLIP_CHECKPOINT to a local weights file."
        )
    return ClipWeights(path=path, preprocess=preprocess, quick_gelu=quick_gelu)


def _cached_clip_file(cfg: dict, cache_dir: Path) -> str | None:
    if cfg.get("hf_hub"):
        from huggingface_hub import hf_hub_download

        repo_id, filename = os.path.split(cfg["hf_hub"])
        for name in [filename] if filename else list(_HF_WEIGHT_FILES):
            try:
                return hf_hub_download(repo_id=repo_id, filename=name, cache_dir=str(cache_dir), local_files_only=True)
            except Exception:
                continue
    if cfg.get("url"):
        path = cache_dir / os.path.basename(cfg["url"])
        if path.is_file():
            return str(path)
    return None


class ClipEmbedder:
    """A loaded CLIP model. Every vector it returns is float32 and L2-normalised."""

    def __init__(self, *, model, preprocess, tokenizer, name: str, dim: int, device: str):
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.dim = dim
        self.device = device

    @property
    def logit_scale(self) -> float:
        """The temperature the model was trained with (100 for OpenAI's CLIP): zero-shot probabilities
        are a softmax of this times the cosine similarities."""
        return float(self.model.logit_scale.detach().exp())

    def embed_images(self, images: list[PILImage.Image]) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        with torch.inference_mode(), reduced_precision():
            for start in range(0, len(images), settings.CLIP_BATCH_SIZE):
                batch = torch.stack(
                    [self.preprocess(image) for image in images[start : start + settings.CLIP_BATCH_SIZE]]
                )
                features = self.model.encode_image(batch.to(self.device))
                chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode(), reduced_precision():
            tokens = self.tokenizer(texts).to(self.device)
            features = encode_text_prefix(self.model, tokens)
            return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)


def encode_text_prefix(model, tokens):
    """`model.encode_text(tokens)`, running the text transformer only up to the last end-of-text token.

    CLIP's text tower is causal and reads its output at the end-of-text token (the highest token id,
    "argmax" pooling), so the padding after it cannot change the result: a 4-word query is ~7 of the
    77 positions, and skipping the rest makes the text tower ~10x faster (the largest cost of a text
    search). This mirrors open_clip's CLIP.encode_text; tests/search/test_models.py checks that both
    give the same vectors, so a change upstream fails a test instead of changing results. Models this
    does not fit (no causal mask, other pooling, a custom text tower) use encode_text itself.
    """
    import open_clip
    import torch

    if not (type(model) is open_clip.CLIP and model.text_pool_type == "argmax" and model.attn_mask is not None):
        return model.encode_text(tokens)  # (not reached by our profiles; tests check they take the shortcut)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    # open_clip reads the dtype off a Linear layer's weight, which int8-quantised layers (MODEL_INT8)
    # do not have; the positional embedding has the same dtype in every precision open_clip casts to.
    cast_dtype = model.positional_embedding.dtype
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    if model.text_projection is not None:
        x = (
            model.text_projection(x)
            if isinstance(model.text_projection, torch.nn.Linear)
            else x @ model.text_projection
        )
    return x


def load_clip() -> ClipEmbedder:
    """Build the configured CLIP model with open_clip's own factory and its weights."""
    import open_clip

    register_model_configs()
    model_name = settings.CLIP_MODEL
    if open_clip.get_model_config(model_name) is None:
        raise ModelUnavailable(f"CLIP_MODEL={model_name!r} is not a model open_clip knows.")
    weights = clip_weights(
        model_name=model_name,
        pretrained=settings.CLIP_PRETRAINED,
        checkpoint=settings.CLIP_CHECKPOINT,
        cache_dir=settings.MODEL_CACHE_DIR / "clip",
        download=False,
    )
    device = torch_device()
    try:
        with seeded_random_init():
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name,
                pretrained=weights.path,
                device=device,
                force_quick_gelu=weights.quick_gelu,
                image_mean=weights.preprocess.get("mean"),
                image_std=weights.preprocess.get("std"),
                image_interpolation=weights.preprocess.get("interpolation"),
                image_resize_mode=weights.preprocess.get("resize_mode"),
            )
    except Exception as error:
        raise ModelUnavailable(f"CLIP weights at {weights.path} could not be loaded: {error}") from error
    model = quantize_int8(model.eval())
    logger.info("Loaded CLIP %s on %s%s", clip_model_id(), device, " (int8)" if settings.MODEL_INT8 else "")
    return ClipEmbedder(
        model=model,
        preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(model_name),
        name=clip_model_id(),
        dim=int(open_clip.get_model_config(model_name)["embed_dim"]),
        device=device,
    )
