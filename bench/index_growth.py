"""An index grown one photo at a time against the same index rebuilt: segments and search latency.

    .venv/bin/python bench/index_growth.py                         # 1,500 photos of 6 regions, one per round
    .venv/bin/python bench/index_growth.py --photos 3000 --merge-factor 1000000   # no merging: the old behaviour
    .venv/bin/python bench/index_growth.py --unbalanced       # one scan task per segment against equal shares

A library that grows a few photos at a time gives the writer (`IndexWriter.update`, as run_indexer
calls it) one small segment per round. This fills a PostgreSQL database (imgsearch_bench_growth,
recreated) round by round through the real change feed, one photo of REGIONS_PER_PHOTO regions
(512-d unit vectors) per round, runs the writer after each, and then times the index step of a
search (the visibility bitmap and the FAISS scan over the memory-mapped segments, as a web process
runs it) for QUERIES random queries: once on the grown index, once after `rebuild()` on the same
vectors. The goal: the grown index within 20% of the rebuilt one.

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
BENCH_DB = "imgsearch_bench_growth"
DIM = 512
REGIONS_PER_PHOTO = 6
QUERIES = 300


def recreate_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {BENCH_DB}")


def index_step_ms(reader, user_id: int, rng: np.random.Generator) -> tuple[float, float, int]:
    """Median milliseconds of the index step over QUERIES queries (all of it, and the FAISS scan of
    it alone), and the generation's segment count."""
    from search.index import Visibility

    generation = reader.current()
    visibility = Visibility(user_id=user_id)
    times, scans = [], []
    for _ in range(QUERIES):
        query = rng.standard_normal(DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        started = time.perf_counter()
        masks = generation.allowed(visibility)
        scanning = time.perf_counter()
        generation.search(query, 100, masks=masks)
        done = time.perf_counter()
        times.append((done - started) * 1000)
        scans.append((done - scanning) * 1000)
    return statistics.median(times), statistics.median(scans), len(generation.segments)


def service_ms(user, rng: np.random.Generator) -> float:
    """Median milliseconds of the search service end to end for a search by a stored picture's vector
    (VectorQuery: no model runs): index step, database re-check, best match per image, a page."""
    from search.queries import VectorQuery
    from search.query import search
    from search.vision.identity import current_model

    model = current_model()[0]
    times = []
    for _ in range(QUERIES // 3):
        query = rng.standard_normal(DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        started = time.perf_counter()
        search(user=user, query=VectorQuery(vector_bytes=query.tobytes(), model=model), min_score=-1)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def unbalanced() -> None:
    """Two segments of 90,000 and 10,000 slots (a grown index's top tiers): scanned one task per
    segment, one thread does nine tenths of the work; in equal shares, each thread half."""
    from search.index import reader
    from search.index.files import write_segment

    directory, rng = Path(tempfile.mkdtemp(prefix="imgsearch-shares-")), np.random.default_rng(0)
    segments = []
    for size in (90_000, 10_000):
        vectors = rng.standard_normal((size, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        segments.append(
            write_segment(directory, np.arange(size), np.arange(size), np.zeros(size, bool), vectors, dim=DIM)
        )
    work = [(segment, np.ones(len(segment), dtype=bool)) for segment in segments]
    query = rng.standard_normal((1, DIM)).astype(np.float32)
    ways = {
        "one task per segment": lambda: list(reader.scan_pool().map(lambda item: item[0].scan(query, 100, item[1]), work)),
        "equal shares": lambda: list(reader.scan_pool().map(
            lambda share: [segment.scan(query, 100, mask) for segment, mask in share], reader._shares(work, 2))),
    }  # fmt: skip
    for name, run in list(ways.items()) * 2:
        times = []
        for _ in range(60):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1000)
        print(f"{name}: scan p50 {statistics.median(times):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=1500, help="rounds of the writer, one photo each")
    parser.add_argument("--merge-factor", type=int, default=None, help="override MERGE_FACTOR (huge: never merge)")
    parser.add_argument("--unbalanced", action="store_true", help="only time the scan of a 90,000 + 10,000 pair")
    args = parser.parse_args()
    if args.unbalanced:
        os.environ.update(DJANGO_SETTINGS_MODULE="imgsearch.settings", SECRET_KEY="bench-" + "x" * 50)
        import django

        django.setup()
        unbalanced()
        return

    recreate_database()
    index_dir = tempfile.mkdtemp(prefix="imgsearch-growth-")
    os.environ.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}", INDEX_DIR=index_dir,
                      DJANGO_SETTINGS_MODULE="imgsearch.settings", SECRET_KEY="bench-" + "x" * 50)  # fmt: skip
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from gallery.models import Image, Region
    from search.index import IndexReader, reset_index
    from search.index import writer as writer_module
    from search.index.writer import IndexWriter
    from search.vision.identity import current_model

    call_command("migrate", verbosity=0)
    if args.merge_factor:
        writer_module.MERGE_FACTOR = args.merge_factor
    model, rng = current_model()[0], np.random.default_rng(0)  # the configured model's: the search service reads it
    user = get_user_model().objects.create(username="grower")
    writer = IndexWriter(model_name=model, dim=DIM, directory=Path(index_dir))
    reader = IndexReader(model_name=model, dim=DIM, directory=Path(index_dir))
    started = time.perf_counter()
    for number in range(args.photos):
        image = Image.objects.create(owner=user, file=f"originals/{number}.jpg", original_name=f"{number}.jpg",
                                     sha256=f"{number:064d}", format="JPEG", width=1024, height=768, size_bytes=1,
                                     status="ready", progress=100)  # fmt: skip
        vectors = rng.standard_normal((REGIONS_PER_PHOTO, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        Region.objects.bulk_create([
            Region(image=image, kind="global" if i == 0 else "object", x1=0, y1=0, x2=10, y2=10, area_fraction=1.0,
                   score=1.0, embedding=Region.pack_vector(vector), embedding_model=model, embedding_dim=DIM)
            for i, vector in enumerate(vectors)
        ])  # fmt: skip
        writer.update()
    grew = time.perf_counter() - started
    grown_ms, grown_scan, grown_segments = index_step_ms(reader, user.pk, np.random.default_rng(1))
    reset_index()
    grown_service = service_ms(user, np.random.default_rng(2))
    sizes = sorted((len(segment) for segment in reader.current().segments), reverse=True)
    writer.rebuild()
    rebuilt_ms, rebuilt_scan, rebuilt_segments = index_step_ms(reader, user.pk, np.random.default_rng(1))
    reset_index()
    rebuilt_service = service_ms(user, np.random.default_rng(2))
    vectors = args.photos * REGIONS_PER_PHOTO
    print(f"{args.photos} photos x {REGIONS_PER_PHOTO} regions ({vectors} vectors), one photo per writer round "
          f"({grew:.0f} s, {grew / args.photos * 1000:.0f} ms a round), MERGE_FACTOR={writer_module.MERGE_FACTOR}")  # fmt: skip
    print(f"grown:   {grown_segments:4d} segments, index step p50 {grown_ms:.2f} ms (scan {grown_scan:.2f} ms); "
          f"sizes {sizes[:20]}")  # fmt: skip
    print(f"rebuilt: {rebuilt_segments:4d} segments, index step p50 {rebuilt_ms:.2f} ms (scan {rebuilt_scan:.2f} ms)")
    print(f"grown / rebuilt: {grown_ms / rebuilt_ms:.2f} (index step); search service p50 {grown_service:.1f} ms "
          f"grown, {rebuilt_service:.1f} ms rebuilt: {grown_service / rebuilt_service:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
