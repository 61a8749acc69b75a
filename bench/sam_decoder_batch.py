"""SAM ViT-B on this machine, stock modules against ours: image encoder, and mask decoding by batch size.

    .venv/bin/python bench/sam_decoder_batch.py                  # our allocator setting (MALLOC_KEEP_FREED)
    .venv/bin/python bench/sam_decoder_batch.py --default-malloc # the C library's defaults

Random weights (speed does not depend on them) and a 1024x768 image. The encoder runs with
segment_anything's attention and with search.vision.fast_sam_model.ChunkedAttention; 256 point prompts
go through the stock MaskDecoder and through PromptDecoder, which upscales masks only for prompts
with an output over the IoU threshold: "all" upscales every prompt, "10%" sets the threshold so
that about a tenth of the prompts pass.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--default-malloc", action="store_true")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    args = parser.parse_args()
    from segment_anything import SamPredictor, sam_model_registry
    from segment_anything.modeling.image_encoder import Attention

    from search.vision.fast_sam_model import PromptDecoder, use_chunked_attention
    from search.vision.runtime import keep_freed_memory, seeded_random_init

    if not args.default_malloc:
        keep_freed_memory()
    with seeded_random_init():
        sam = sam_model_registry["vit_b"](checkpoint=None).eval()
    predictor = SamPredictor(sam)
    image = (np.random.default_rng(0).random((768, 1024, 3)) * 255).astype(np.uint8)
    print(f"threads={torch.get_num_threads()} allocator={'default' if args.default_malloc else 'keep freed'}")
    with torch.inference_mode():
        for name in ("stock", "chunked"):
            if name == "chunked":
                use_chunked_attention(sam)
            predictor.set_image(image)  # warm-up
            started = time.perf_counter()
            predictor.set_image(image)
            print(f"encoder ({name} attention): {time.perf_counter() - started:.2f} s", flush=True)
        for block in sam.image_encoder.blocks:
            block.attn.__class__ = Attention
        points = np.random.default_rng(1).random((256, 2)) * [1024, 768]
        coords = torch.as_tensor(predictor.transform.apply_coords(points, (768, 1024)), dtype=torch.float32)
        sparse, dense = sam.prompt_encoder(
            points=(coords[:, None, :], torch.ones(256, 1, dtype=torch.int)), boxes=None, masks=None
        )
        pe = sam.prompt_encoder.get_dense_pe()
        decoder = PromptDecoder(sam, predictor.features)
        iou = torch.cat([decoder(sparse[s : s + 64], 0.0)[0] for s in range(0, 256, 64)])
        ten_percent = float(iou.max(dim=1).values.quantile(0.9))

        def stock(s, e):
            sam.mask_decoder(
                image_embeddings=predictor.features,
                image_pe=pe,
                sparse_prompt_embeddings=sparse[s:e],
                dense_prompt_embeddings=dense[s:e],
                multimask_output=True,
            )

        sides = {
            "stock MaskDecoder": stock,
            "PromptDecoder, all upscaled": lambda s, e: decoder(sparse[s:e], 0.0),
            "PromptDecoder, 10% upscaled": lambda s, e: decoder(sparse[s:e], ten_percent),
        }
        for name, run in sides.items():
            cells = []
            for batch in args.batches:
                run(0, batch)  # warm-up
                started = time.perf_counter()
                for start in range(0, 256, batch):
                    run(start, start + batch)
                cells.append(f"batches of {batch}: {time.perf_counter() - started:.2f} s")
            print(f"{name}, 256 prompts: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
