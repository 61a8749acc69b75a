"""Search latency and recall at 10k / 100k / 1M regions.

    .venv/bin/python bench/search_bench.py                 # N = 10k, 100k, 1M
    .venv/bin/python bench/search_bench.py --sizes 10000   # one size

For each N it fills a PostgreSQL database (imgsearch_bench, recreated) with N random unit vectors
(512-d, the size of ViT-B-32's) as the regions of N/20 images spread over 200 users, 30% of the
images public, then measures for a user who may see about a third of them:

* the FAISS step alone (VectorIndex.search with that user's visibility restriction), p50/p95;
* the search service end to end for text queries (search.query.search: CLIP ViT-B-32 text tower
  with random weights, index catch-up, FAISS, database re-check, grouping), p50/p95;
* recall@10 of the FAISS step against exact search (numpy, float32) over the same allowed set.

Needs PostgreSQL on 127.0.0.1:5432 (as for the tests); touches no other database.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_DB = "imgsearch_bench"
DIM = 512
REGIONS_PER_IMAGE = 20
USERS = 200
PUBLIC_SHARE = 0.3
QUERIES = 40
WORDS = "a red car parked near the beach dog sitting on sofa sunset over mountains child with kite".split()


def recreate_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {BENCH_DB}")


def fill(n: int, rng: np.random.Generator, model_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Insert users, images and n regions; return (region ids, image owner per region, image public per region)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from gallery.models import Image

    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"user{i}") for i in range(USERS)])
    images_count = max(1, n // REGIONS_PER_IMAGE)
    owners = rng.integers(0, USERS, size=images_count)
    public = rng.random(images_count) < PUBLIC_SHARE
    now = timezone.now()
    images = Image.objects.bulk_create(
        [Image(owner=users[o], file=f"originals/{i}.jpg", original_name=f"{i}.jpg", sha256=f"{i:064d}", format="JPEG",
               width=1024, height=768, size_bytes=1, is_public=bool(p), status="ready", progress=100)
         for i, (o, p) in enumerate(zip(owners, public))],
        batch_size=5000,
    )
    image_ids = np.array([image.pk for image in images])
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor() as pg, pg.copy(
            "COPY gallery_region (image_id, kind, x1, y1, x2, y2, area_fraction, score, embedding, "
            "embedding_model, embedding_dim, created_at) FROM STDIN"
        ) as copy:
            for start in range(0, n, 50_000):
                count = min(50_000, n - start)
                vectors = rng.standard_normal((count, DIM), dtype=np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                codes = vectors.astype(np.float16)
                for offset in range(count):
                    number = start + offset
                    image_index = number // REGIONS_PER_IMAGE
                    kind = "global" if number % REGIONS_PER_IMAGE == 0 else "object"
                    copy.write_row((int(image_ids[min(image_index, images_count - 1)]), kind, 0, 0, 10, 10, 0.1, 1.0,
                                    codes[offset].tobytes(), model_name, DIM, now))
        # What autovacuum does soon after a bulk load; without statistics PostgreSQL scans the whole
        # region table for the index's "id > watermark" catch-up query.
        cursor.execute("ANALYZE")
    return users, owners, public


def percentiles(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.1f} ms, p95 {np.percentile(values, 95) * 1000:.1f} ms"


def run(n: int) -> dict:
    import django
    from django.db import connection

    connection.close()
    recreate_database()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from search.index import Visibility, VectorIndex, current_model, reset_index
    from search.loading import get_clip
    from search.query import TextQuery, search

    model_name, dim = current_model()
    rng = np.random.default_rng(n)
    started = time.perf_counter()
    users, owners, public = fill(n, rng, model_name)
    fill_seconds = time.perf_counter() - started

    reset_index()
    started = time.perf_counter()
    from search.index import get_index

    index = get_index()  # no file yet: rebuilt from the database
    rebuild_seconds = time.perf_counter() - started
    assert index.ntotal == n, (index.ntotal, n)

    user = users[0]
    clip = get_clip()
    texts = [" ".join(rng.choice(WORDS, size=4)) for _ in range(QUERIES)]
    vectors = clip.embed_texts(texts)
    visibility = Visibility(user_id=user.pk)

    # Exact answers for recall: every vector the user may see, scored in float32.
    from gallery.models import Region

    rows = Region.objects.filter(image__owner=user).values_list("pk", flat=True)
    allowed = set(rows) | set(Region.objects.filter(image__is_public=True).values_list("pk", flat=True))
    allowed_ids = np.array(sorted(allowed))
    faiss_seconds, recalls = [], []
    for vector in vectors:
        started = time.perf_counter()
        _, ids, eligible = index.search(vector, 100, visibility=visibility)
        faiss_seconds.append(time.perf_counter() - started)
        recalls.append(len(set(ids[0][:10].tolist()) & set(exact_top10(index, vector, allowed_ids))) / 10)
    assert eligible == len(allowed_ids), (eligible, len(allowed_ids))

    service_seconds = []
    for text in texts:
        started = time.perf_counter()
        search(user=user, query=TextQuery(text), min_score=-1)
        service_seconds.append(time.perf_counter() - started)
    return {
        "n": n, "fill": fill_seconds, "rebuild": rebuild_seconds, "eligible": len(allowed_ids),
        "faiss": percentiles(faiss_seconds), "service": percentiles(service_seconds),
        "recall": float(np.mean(recalls)),
    }


def exact_top10(index, vector: np.ndarray, allowed_ids: np.ndarray) -> list[int]:
    best: list[tuple[float, int]] = []
    for shard in index._shards:
        keep = np.isin(shard.region_ids, allowed_ids)
        if not keep.any():
            continue
        codes = shard.index.reconstruct_n(0, shard.index.ntotal)[keep]
        scores = codes @ vector
        top = np.argsort(-scores)[:10]
        best += [(float(scores[i]), int(shard.region_ids[keep][i])) for i in top]
    return [pk for _, pk in sorted(best, reverse=True)[:10]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imgsearch-search-bench-"))
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
        "IMGSEARCH_MODEL_PROFILE": "full",
        "CLIP_PRETRAINED": "",  # ViT-B-32 with random weights: the text tower costs the same
        "INDEX_DIR": str(work / "index"),
        "MEDIA_ROOT": str(work / "media"),
        "LOG_LEVEL": "WARNING",
    })
    import django

    django.setup()
    import torch

    print(f"threads={torch.get_num_threads()} queries={QUERIES} dim={DIM}")
    print("| N regions | eligible for the user | FAISS step | search service (text) | recall@10 | fill DB | index rebuild |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        r = run(n)
        print(f"| {r['n']:,} | {r['eligible']:,} | {r['faiss']} | {r['service']} | {r['recall']:.3f} | "
              f"{r['fill']:.0f} s | {r['rebuild']:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
