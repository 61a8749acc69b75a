"""Inverted-file (IVF) segments against exhaustive ones, on clustered vectors: recall@10 and latency.

    .venv/bin/python bench/ivf_bench.py                       # 1M vectors, both kinds of data
    .venv/bin/python bench/ivf_bench.py --sizes 5000000 --data topics --nprobe 8 16 32 64

Past INDEX_IVF_MIN_SLOTS vectors a segment is written as an inverted file (search.index.files.write_segment):
sqrt(n) k-means lists of float16 codes, of which a query scans INDEX_IVF_NPROBE. Random unit vectors
have no clusters, so an IVF must scan most lists to find their neighbours; real CLIP embeddings do
cluster. This bench makes clustered 512-d unit vectors of one of two kinds:

* `blobs`: 20,000 cluster centres spread at random on the sphere, each vector its centre plus as
  much noise (cosine to the centre ~0.75): many more clusters than lists, each list a mix of
  unrelated clusters, the hard case;
* `topics`: 1,000 topic centres, 20 kinds of object per topic near it (cosine ~0.8), each vector
  near its kind (cosine ~0.85): how photos of one kind of thing group, kinds group into topics.

It writes them as 2 segments of each type with the real writer code into a scratch folder, and runs
40 queries (noisy copies of stored vectors) restricted to a random 30% of the slots, as a user's
visibility would.
Reported per size: build time, exhaustive scan latency, and for each nprobe the share of lists read,
latency and recall@10 against the exhaustive float16 answer (itself exact over the stored codes).

Needs no database; writes ~2 KB per vector under a temporary folder (removed at the end).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DIM = 512
CLUSTERS = 20_000
TOPICS = 1_000
NOISE = 0.04  # per coordinate: cosine to the centre ~0.75 at 512 dimensions
QUERIES = 40
VISIBLE = 0.3
CHUNK = 250_000


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def centres_for(data: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(cluster centres, per-coordinate noise of a vector around its centre)."""
    if data == "blobs":
        return unit_rows(rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)), NOISE
    topics = unit_rows(rng.standard_normal((TOPICS, DIM), dtype=np.float32))
    kinds = np.repeat(topics, CLUSTERS // TOPICS, axis=0) + 0.033 * rng.standard_normal(
        (CLUSTERS, DIM), dtype=np.float32
    )
    return unit_rows(kinds), 0.027


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray, noise: float) -> np.ndarray:
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        part = centres[rng.integers(0, len(centres), stop - start)]
        part += noise * rng.standard_normal((stop - start, DIM), dtype=np.float32)
        vectors[start:stop] = unit_rows(part)
    return vectors


def search_all(segments, masks, queries: np.ndarray, k: int = 10) -> tuple[list[list[int]], list[float]]:
    answers, seconds = [], []
    for query in queries:
        started = time.perf_counter()
        parts = [segment.scan(query[None], k, mask) for segment, mask in zip(segments, masks, strict=True)]
        scores = np.concatenate([p[0] for p in parts], axis=1)[0]
        ids = np.concatenate([p[1] for p in parts], axis=1)[0]
        top = ids[np.argsort(-np.where(ids >= 0, scores, -np.inf))[:k]]
        seconds.append(time.perf_counter() - started)
        answers.append(top.tolist())
    return answers, seconds


def run(n: int, data: str, nprobes: list[int], work: Path) -> None:
    from django.conf import settings

    from search.index.files import IVF_DEFAULT_NPROBE_DIVISOR, ivf_list_count, write_segment

    rng = np.random.default_rng(n)
    centres, noise = centres_for(data, rng)
    half = n // 2
    built = {}
    for kind, threshold in (("flat", n + 1), ("ivf", 1)):
        settings.INDEX_IVF_MIN_SLOTS = threshold
        directory = work / kind
        directory.mkdir()
        segments, seconds = [], 0.0
        for part in range(2):
            vectors = clustered(half, np.random.default_rng(n + part), centres, noise)
            ids = np.arange(part * half, (part + 1) * half)
            started = time.perf_counter()
            segments.append(write_segment(directory, ids, ids, np.zeros(half, bool), vectors, dim=DIM))
            seconds += time.perf_counter() - started
            del vectors
        built[kind] = (segments, seconds)
    sample = clustered(QUERIES, np.random.default_rng(n + 7), centres, noise)
    queries = sample + noise / 2 * rng.standard_normal(sample.shape, dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    masks = [rng.random(half) < VISIBLE for _ in range(2)]

    flat_segments, flat_seconds = built["flat"]
    truth, exhaustive = search_all(flat_segments, masks, queries)
    ivf_segments, ivf_seconds = built["ivf"]
    lists = ivf_list_count(half)
    print(f"\nN={n:,} clustered vectors ({data}), 2 segments, {VISIBLE:.0%} of slots visible", flush=True)
    print(
        f"  build: exhaustive {flat_seconds:.0f} s, IVF {ivf_seconds:.0f} s ({lists} lists per segment, k-means on "
        f"{min(half, 64 * lists):,} vectors)"
    )
    print(f"  exhaustive scan: p50 {statistics.median(exhaustive) * 1000:.1f} ms (one thread, both segments)")
    print("| nprobe | lists read | p50 | p95 | recall@10 |")
    print("|---|---|---|---|---|")
    for nprobe in nprobes + [0]:
        settings.INDEX_IVF_NPROBE = nprobe
        answers, seconds = search_all(ivf_segments, masks, queries)
        recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(answers, truth, strict=True)])
        used = nprobe or max(1, lists // IVF_DEFAULT_NPROBE_DIVISOR)
        label = f"{used} (default)" if nprobe == 0 else str(used)
        print(
            f"| {label} | {used / lists:.1%} | {statistics.median(seconds) * 1000:.1f} ms | "
            f"{np.percentile(seconds, 95) * 1000:.1f} ms | {recall:.3f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--data", nargs="+", choices=["blobs", "topics"], default=["blobs", "topics"])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    args = parser.parse_args()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": "sqlite:////tmp/imgsearch-ivf-bench-unused.sqlite3",
        }
    )
    import django

    django.setup()
    import faiss

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, dim {DIM}")
    for n in args.sizes:
        for data in args.data:
            work = Path(tempfile.mkdtemp(prefix="imgsearch-ivf-bench-"))
            try:
                run(n, data, args.nprobe, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
