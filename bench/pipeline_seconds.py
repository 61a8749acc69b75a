"""Seconds per image through the real ingestion pipeline, per stage: searchable
(search.ingest.image_process: decode, thumbnail and preview, the whole-image vector) and objects
(search.ingest.objects_find: SAM, crops, their vectors).

    .venv/bin/python bench/pipeline_seconds.py --models tiny
    .venv/bin/python bench/pipeline_seconds.py --models full-random     # SAM ViT-B + CLIP ViT-B-32
    PROCESSING_BATCH_IMAGES=8 MODEL_DEVICE=cuda python3 bench/pipeline_seconds.py --models full-random --images 32

The first stage takes up to SEARCHABLE_BATCH_IMAGES (8) photos a call; with PROCESSING_BATCH_IMAGES
> 1 each objects call takes that many at once (one SAM encoder batch, one CLIP batch), as the worker
does. A warm-up set goes through both stages first; then every timed photo is made searchable, and
then every one gets its objects (as a big import runs: searchable first).

full-random builds the full-size models with random weights (speed does not depend on the
values; the masks do, so the region counts are not those of real photos). It runs against a
throwaway SQLite database and media folder, so it touches nothing of yours.
"""

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROFILES = {
    "tiny": {"IMGSEARCH_MODEL_PROFILE": "tiny"},
    "full-random": {"IMGSEARCH_MODEL_PROFILE": "full", "CLIP_PRETRAINED": "", "SAM_CHECKPOINT": "random"},
}


def scene(width: int, height: int, seed: int):
    """Textured background with a few flat shapes: something for SAM to find."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=3)
    noise = rng.normal(0, 12, size=(height, width, 1))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
        w, h = int(rng.integers(width // 10, width // 4)), int(rng.integers(height // 10, height // 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=colour)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", choices=sorted(PROFILES), default="tiny")
    parser.add_argument("--images", type=int, default=4, help="images timed (after one warm-up batch)")
    parser.add_argument("--size", default="1024x768")
    parser.add_argument(
        "--stock-attention",
        action="store_true",
        help="SAM's own encoder attention instead of ChunkedAttention (search/vision/fast_sam_model.py)",
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    work = Path(tempfile.mkdtemp(prefix="imgsearch-bench-"))
    os.environ.update(PROFILES[args.models])
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
            "DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}".replace("sqlite:///", "sqlite:////", 1),
            "MEDIA_ROOT": str(work / "media"),
            "INDEX_DIR": str(work / "index"),
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    import torch
    from django.conf import settings
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from gallery.models import Image, Region
    from gallery.services import image_create
    from search.ingest import SEARCHABLE_BATCH_IMAGES, image_process, objects_find
    from search.vision.registry import get_clip, get_proposer
    from search.vision.runtime import torch_device

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench")
    batch = settings.PROCESSING_BATCH_IMAGES

    def stored(seeds) -> list[int]:
        import io

        ids = []
        for seed in seeds:
            buffer = io.BytesIO()
            scene(width, height, seed).save(buffer, "JPEG", quality=90)
            ids.append(image_create(owner=user, upload=ContentFile(buffer.getvalue(), name=f"{seed}.jpg")).image.pk)
        return ids

    def through(stage, ids: list[int], done: str) -> tuple[list[float], float]:
        """Run `stage` for each photo (a call whose photo an earlier batch took returns at once and
        is not counted); (seconds per call, seconds in all)."""
        seconds = []
        started_all = time.perf_counter()
        for image_id in ids:
            started = time.perf_counter()
            outcome = stage(image_id=image_id)
            if outcome != "skipped":
                seconds.append(time.perf_counter() - started)
            assert outcome in (done, "skipped"), Image.objects.get(pk=image_id).error
        return seconds, time.perf_counter() - started_all

    started = time.perf_counter()
    proposer = get_proposer()
    get_clip()
    if args.stock_attention:
        from segment_anything.modeling.image_encoder import Attention

        for block in proposer.generator.predictor.model.image_encoder.blocks:
            block.attn.__class__ = Attention
    load_seconds = time.perf_counter() - started

    # Warm-up through both stages (first-call allocations, kernel selection), then time the rest.
    warm = stored(range(10_000, 10_000 + max(batch, SEARCHABLE_BATCH_IMAGES)))
    through(image_process, warm, "ready")
    through(objects_find, warm, "found")
    ids = stored(range(args.images))
    searchable, searchable_total = through(image_process, ids, "ready")
    objects, objects_total = through(objects_find, ids, "found")
    assert set(Image.objects.values_list("status", "objects_status")) == {("ready", "found")}
    regions = Region.objects.filter(kind="object", image_id__in=ids).count() / len(ids)
    print(
        f"models={args.models} images={args.images} size={width}x{height} device={torch_device()} "
        f"threads={torch.get_num_threads()} batch={batch} grid={settings.SAM_POINTS_PER_SIDE} "
        f"points_per_batch={settings.SAM_POINTS_PER_BATCH} bf16={settings.MODEL_BF16} "
        f"attention={'stock' if args.stock_attention else 'chunked'}"
    )
    print(f"model load: {load_seconds:.1f} s (once per worker process)")
    for label, seconds, total, per_call in (
        ("searchable", searchable, searchable_total, SEARCHABLE_BATCH_IMAGES),
        ("objects", objects, objects_total, batch),
    ):
        print(
            f"{label}: {total / args.images:.3f} s per image ({args.images / total:.2f} images/s); seconds per "
            f"call (up to {per_call} image(s) each): median {statistics.median(seconds):.3f}, "
            f"min {min(seconds):.3f}, max {max(seconds):.3f}"
        )
    print(f"both stages: {(searchable_total + objects_total) / args.images:.3f} s per image")
    print(f"object regions per image: {regions:.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak memory of the process: {peak:.0f} MB (MALLOC_KEEP_FREED={os.environ.get('MALLOC_KEEP_FREED', 'true')})"
    )
    if torch.cuda.is_available():
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MB ({torch.cuda.get_device_name()})")


if __name__ == "__main__":
    main()
