"""What MODEL_INT8 buys and costs: speed and output deltas of int8 SAM ViT-B and CLIP ViT-B-32 on the CPU.

    .venv/bin/python bench/quantization_deltas.py

Both models are built by our loaders (search.proposers.load_sam_model, search.clip.load_clip) with
seeded random weights, once as float32 and once with MODEL_INT8=true. Reported: SAM encoder time on
a 1024x768 image, decoder time for 64 prompts and the IoU of the (low-resolution) masks; CLIP time
for 16 crops and the cosine between float and int8 embeddings. Random weights make these deltas
indicative only; rerun with real weights (CLIP_CHECKPOINT / SAM_CHECKPOINT) where you have them.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    os.environ.update({"DJANGO_SETTINGS_MODULE": "imgsearch.settings", "IMGSEARCH_MODEL_PROFILE": "full",
                       "CLIP_PRETRAINED": "", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    import torch
    from django.conf import settings
    from PIL import Image as PILImage
    from segment_anything import SamPredictor

    from search.clip import load_clip
    from search.proposers import load_sam_model

    rng = np.random.default_rng(0)
    picture = (rng.random((768, 1024, 3)) * 255).astype(np.uint8)
    crops = [PILImage.fromarray(picture[y : y + 200, x : x + 200]) for x, y in rng.integers(0, 500, size=(16, 2))]
    points = rng.random((64, 2)) * [1024, 768]
    outputs = {}
    for int8 in (False, True):
        settings.MODEL_INT8 = int8
        sam = load_sam_model(model_type="vit_b", checkpoint="random")
        predictor = SamPredictor(sam)
        with torch.inference_mode():
            started = time.perf_counter()
            predictor.set_image(picture)
            encoder = time.perf_counter() - started
            started = time.perf_counter()
            masks = []
            for start in range(0, len(points), 16):
                coords = torch.as_tensor(predictor.transform.apply_coords(points[start : start + 16], (768, 1024)),
                                         dtype=torch.float32)
                labels = torch.ones((len(coords), 1), dtype=torch.int)
                sparse, dense = sam.prompt_encoder(points=(coords[:, None, :], labels), boxes=None, masks=None)
                low_res, _ = sam.mask_decoder(image_embeddings=predictor.features, image_pe=sam.prompt_encoder.get_dense_pe(),
                                              sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                              multimask_output=True)
                masks.append(low_res > 0)
            decoder = time.perf_counter() - started
        clip = load_clip()
        clip.embed_images(crops[:1])  # warm-up
        started = time.perf_counter()
        vectors = clip.embed_images(crops)
        clip_seconds = time.perf_counter() - started
        outputs[int8] = {"masks": torch.cat(masks), "vectors": vectors}
        print(f"{'int8 ' if int8 else 'float'}: SAM encoder {encoder:.2f} s, decoder (64 prompts) {decoder:.2f} s, "
              f"CLIP 16 crops {clip_seconds:.2f} s", flush=True)
    a, b = outputs[False]["masks"], outputs[True]["masks"]
    iou = ((a & b).flatten(1).sum(1).float() / (a | b).flatten(1).sum(1).float().clamp(min=1)).numpy()
    cosine = (outputs[False]["vectors"] * outputs[True]["vectors"]).sum(axis=1)
    print(f"mask IoU int8 vs float: median {np.median(iou):.3f}, min {iou.min():.3f}; "
          f"CLIP cosine int8 vs float: median {np.median(cosine):.4f}, min {cosine.min():.4f}")


if __name__ == "__main__":
    main()
