"""SAM ViT-B on this machine: image encoder time, and mask-decoder time for 256 prompts by batch size.

    .venv/bin/python bench/sam_decoder_batch.py

Random weights (speed does not depend on them) and a 1024x768 image.
"""
import time

import numpy as np
import torch
from segment_anything import SamPredictor, sam_model_registry


def main() -> None:
    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"](checkpoint=None).eval()
    predictor = SamPredictor(sam)
    image = (np.random.default_rng(0).random((768, 1024, 3)) * 255).astype(np.uint8)
    with torch.inference_mode():
        started = time.perf_counter()
        predictor.set_image(image)
        print(f"threads={torch.get_num_threads()} encoder: {time.perf_counter() - started:.2f} s")
        points = np.random.default_rng(1).random((256, 2)) * [1024, 768]
        for batch in (16, 64, 256):
            started = time.perf_counter()
            for start in range(0, len(points), batch):
                coords = torch.as_tensor(predictor.transform.apply_coords(points[start : start + batch], (768, 1024)),
                                         dtype=torch.float32)
                labels = torch.ones(len(coords), dtype=torch.int)
                sparse, dense = sam.prompt_encoder(points=(coords[:, None, :], labels[:, None]), boxes=None, masks=None)
                sam.mask_decoder(image_embeddings=predictor.features, image_pe=sam.prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True)
            print(f"decoder, 256 prompts in batches of {batch}: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
