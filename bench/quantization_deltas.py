"""What MODEL_INT8 and MODEL_BF16 buy and cost: speed and output deltas of SAM ViT-B and CLIP ViT-B-32.

    .venv/bin/python bench/quantization_deltas.py

Both models are built by our loaders (search.vision.sam.load_sam_model, search.vision.clip.load_clip) with
seeded random weights, as float32, with MODEL_INT8=true and with MODEL_BF16=true, in a process set
up like a worker (search.vision.runtime.configure_torch). Reported: SAM encoder time on a 1024x768 image,
mask decoding of 64 prompts (PromptDecoder, every prompt upscaled) and the IoU of those
low-resolution masks against float32; CLIP time for 16 crops and the cosine of their embeddings
against float32. Random weights make the deltas indicative only; rerun with real weights
(CLIP_CHECKPOINT / SAM_CHECKPOINT) where you have them.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
            "IMGSEARCH_MODEL_PROFILE": "full",
            "CLIP_PRETRAINED": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    import torch
    from django.conf import settings
    from PIL import Image as PILImage
    from segment_anything import SamPredictor

    from search.vision.clip import load_clip
    from search.vision.fast_sam_model import PromptDecoder
    from search.vision.runtime import configure_torch, keep_freed_memory, reduced_precision
    from search.vision.sam import load_sam_model

    configure_torch()
    if settings.MALLOC_KEEP_FREED:
        keep_freed_memory()
    rng = np.random.default_rng(0)
    picture = (rng.random((768, 1024, 3)) * 255).astype(np.uint8)
    crops = [PILImage.fromarray(picture[y : y + 200, x : x + 200]) for x, y in rng.integers(0, 500, size=(16, 2))]
    points = rng.random((64, 2)) * [1024, 768]
    outputs = {}
    for mode in ("float32", "int8", "bf16"):
        settings.MODEL_INT8, settings.MODEL_BF16 = mode == "int8", mode == "bf16"
        sam = load_sam_model(model_type="vit_b", checkpoint="random")
        predictor = SamPredictor(sam)
        with torch.inference_mode(), reduced_precision():
            predictor.set_image(picture)  # warm-up
            started = time.perf_counter()
            predictor.set_image(picture)
            encoder = time.perf_counter() - started
            coords = torch.as_tensor(predictor.transform.apply_coords(points, (768, 1024)), dtype=torch.float32)
            sparse, _ = sam.prompt_encoder(
                points=(coords[:, None, :], torch.ones((64, 1), dtype=torch.int)), boxes=None, masks=None
            )
            decoder = PromptDecoder(sam, predictor.features)
            decoder(sparse[:16], 0.0)  # warm-up
            started = time.perf_counter()
            masks = torch.cat([decoder(sparse[start : start + 16], 0.0)[2] > 0 for start in range(0, 64, 16)])
            decoding = time.perf_counter() - started
        clip = load_clip()
        clip.embed_images(crops[:1])  # warm-up
        started = time.perf_counter()
        vectors = clip.embed_images(crops)
        clip_seconds = time.perf_counter() - started
        outputs[mode] = {"masks": masks.flatten(0, 1), "vectors": vectors}
        line = f"{mode}: SAM encoder {encoder:.2f} s, decoding 64 prompts {decoding:.2f} s, CLIP 16 crops {clip_seconds:.2f} s"
        if mode != "float32":
            a, b = outputs["float32"]["masks"], outputs[mode]["masks"]
            iou = ((a & b).flatten(1).sum(1).float() / (a | b).flatten(1).sum(1).float().clamp(min=1)).numpy()
            cosine = (outputs["float32"]["vectors"] * vectors).sum(axis=1)
            line += (
                f"; mask IoU vs float32 median {np.median(iou):.3f}, min {iou.min():.3f}; "
                f"CLIP cosine vs float32 median {np.median(cosine):.4f}, min {cosine.min():.4f}"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
