"""Search at 10k / 100k / 1M regions: latency, where the time goes, memory per process, parallel
throughput, and how soon a change reaches searches.

    .venv/bin/python bench/search_bench.py                      # N = 10k, 100k, 1M
    .venv/bin/python bench/search_bench.py --sizes 100000       # one size
    .venv/bin/python bench/search_bench.py --sizes 1000000 --processes 4 --clients 8

For each N it fills a PostgreSQL database (imgsearch_bench, recreated) with N random unit vectors
(512-d, the size of ViT-B-32's) as the regions of N/20 images spread over 200 users, 30% of the
images public, builds the index with the real writer (`IndexWriter.rebuild`), then measures for a
user who may see about a third of the regions:

* latency, one query at a time in this process: the index step alone (visibility bitmap + FAISS
  scan over the memory-mapped segments), and the search service end to end for text queries
  (`search.query.search`: ViT-B-32 text tower with random weights, index, database re-check,
  grouping), with the service's time split into its stages; recall@10 of the index step against
  exact float32 search over the same allowed set;
* memory: `--processes` reader processes open the index and search; each one's resident set,
  proportional set (shared pages divided among the processes that map them) and private memory,
  from /proc/PID/smaps_rollup, against the size of the vectors;
* throughput: `--clients` threads spread over 2 processes run the search service at once;
* freshness: `run_indexer` runs beside a reader; an image's visibility is toggled 10 times and
  the time until the reader's searches reflect it is measured.

Needs PostgreSQL on 127.0.0.1:5432 (as for the tests); touches no other database.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
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
WORDS = [
    "a",
    "red",
    "car",
    "parked",
    "near",
    "the",
    "beach",
    "dog",
    "sitting",
    "on",
    "sofa",
    "sunset",
    "over",
    "mountains",
    "child",
    "with",
    "kite",
]


def recreate_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {BENCH_DB}")


def fill(n: int, rng: np.random.Generator, model_name: str):
    """Insert users, images and n regions (the feed's triggers off: the index is rebuilt after)."""
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
        [
            Image(
                owner=users[o],
                file=f"originals/{i}.jpg",
                original_name=f"{i}.jpg",
                sha256=f"{i:064d}",
                format="JPEG",
                width=1024,
                height=768,
                size_bytes=1,
                is_public=bool(p),
                status="ready",
                progress=100,
            )
            for i, (o, p) in enumerate(zip(owners, public, strict=True))
        ],
        batch_size=5000,
    )
    image_ids = np.array([image.pk for image in images])
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # no triggers for the bulk load
        raw = cursor.connection
        with (
            raw.cursor() as pg,
            pg.copy(
                "COPY gallery_region (image_id, kind, x1, y1, x2, y2, area_fraction, score, embedding, "
                "embedding_model, embedding_dim, created_at) FROM STDIN"
            ) as copy,
        ):
            for start in range(0, n, 50_000):
                count = min(50_000, n - start)
                vectors = rng.standard_normal((count, DIM), dtype=np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                codes = vectors.astype(np.float16)
                for offset in range(count):
                    number = start + offset
                    image_index = number // REGIONS_PER_IMAGE
                    kind = "global" if number % REGIONS_PER_IMAGE == 0 else "object"
                    copy.write_row(
                        (
                            int(image_ids[min(image_index, images_count - 1)]),
                            kind,
                            0,
                            0,
                            10,
                            10,
                            0.1,
                            1.0,
                            codes[offset].tobytes(),
                            model_name,
                            DIM,
                            now,
                        )
                    )
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("ANALYZE")  # what autovacuum does soon after a bulk load
    return users


def percentiles(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.1f} ms, p95 {np.percentile(values, 95) * 1000:.1f} ms"


def exact_top10(generation, vector: np.ndarray, allowed_ids: np.ndarray) -> list[int]:
    best: list[tuple[float, int]] = []
    for segment, alive in zip(generation.segments, generation.alive, strict=True):
        keep = np.flatnonzero(alive & np.isin(segment.region_ids, allowed_ids))
        if not len(keep):
            continue
        scores = segment.vectors(keep) @ vector
        top = np.argsort(-scores)[:10]
        best += [(float(scores[i]), int(segment.region_ids[keep[i]])) for i in top]
    return [pk for _, pk in sorted(best, reverse=True)[:10]]


def latency(n: int, user, texts: list[str]) -> dict:
    """One query at a time: the index step, the service, the service's stages, recall@10."""
    from django.db.models import Q

    from gallery.models import Region
    from gallery.selectors import images_searchable_by
    from search.index import Visibility, get_index
    from search.queries import TextQuery
    from search.query import search
    from search.ranking import best_per_image
    from search.vision.registry import get_clip

    generation = get_index().current()
    clip = get_clip()
    vectors = clip.embed_texts(texts)
    visibility = Visibility(user_id=user.pk)
    allowed_ids = np.array(
        sorted(Region.objects.filter(Q(image__owner=user) | Q(image__is_public=True)).values_list("pk", flat=True))
    )
    index_seconds, answers = [], []
    for vector in vectors:
        started = time.perf_counter()
        _, ids, eligible = generation.search(vector, 100, visibility=visibility)
        index_seconds.append(time.perf_counter() - started)
        answers.append(ids[0][:10].tolist())
    assert eligible == len(allowed_ids), (eligible, len(allowed_ids))
    recalls = [
        len(set(found) & set(exact_top10(generation, vector, allowed_ids))) / 10
        for found, vector in zip(answers, vectors, strict=True)
    ]

    service_seconds, stages = (
        [],
        {"text tower": [], "visibility bitmap": [], "FAISS scan": [], "database re-check, grouping, page": []},
    )
    images = images_searchable_by(user, "all")
    regions = Region.objects.filter(image__in=images)
    for text in texts:
        started = time.perf_counter()
        search(user=user, query=TextQuery(text), min_score=-1)
        service_seconds.append(time.perf_counter() - started)
        # The same steps timed one by one.
        t0 = time.perf_counter()
        vector = clip.embed_texts([text])[0]
        t1 = time.perf_counter()
        masks = generation.allowed(visibility)
        t2 = time.perf_counter()
        scores, ids, _ = generation.search(vector, 100, visibility=visibility)
        t3 = time.perf_counter()
        matches = best_per_image(dict(zip(ids[0].tolist(), scores[0].tolist(), strict=True)), regions, -1.0)
        images.select_related("owner").in_bulk([m.image_id for m in matches[:24]])
        t4 = time.perf_counter()
        stages["text tower"].append(t1 - t0)
        stages["visibility bitmap"].append(t2 - t1)
        stages["FAISS scan"].append((t3 - t2) - (t2 - t1))  # search() builds the bitmap too
        stages["database re-check, grouping, page"].append(t4 - t3)
        del masks
    return {
        "eligible": len(allowed_ids),
        "index": percentiles(index_seconds),
        "service": percentiles(service_seconds),
        "recall": float(np.mean(recalls)),
        "stages": ", ".join(f"{name} {statistics.median(v) * 1000:.1f} ms" for name, v in stages.items()),
    }


READER = """
import json, sys, threading, time, django
django.setup()
import numpy as np
from django.contrib.auth import get_user_model
from search.index import get_index
from search.queries import TextQuery
from search.query import search
user = get_user_model().objects.get(username="user0")
clients, queries = int(sys.argv[1]), int(sys.argv[2])
texts = [line for line in sys.argv[3].split("|")]
def memory():
    fields = {}
    for line in open("/proc/self/smaps_rollup"):
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"], "private": fields["Private_Clean"] + fields["Private_Dirty"],
            "anonymous": fields["Anonymous"]}
from search.vision.registry import get_clip
get_clip().embed_texts(["warm up"])
before = memory()  # Django, torch and CLIP loaded; the index not opened yet
search(user=user, query=TextQuery("warm up"), min_score=-1)
print(json.dumps({"ready": True, "before": before, "memory": memory()}), flush=True)
sys.stdin.readline()  # the bench says go
latencies, lock = [], threading.Lock()
def client(number):
    for i in range(queries):
        started = time.perf_counter()
        search(user=user, query=TextQuery(texts[(number * queries + i) % len(texts)]), min_score=-1)
        with lock:
            latencies.append(time.perf_counter() - started)
started = time.perf_counter()
threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({"latencies": latencies, "seconds": time.perf_counter() - started, "memory": memory()}), flush=True)
sys.stdin.readline()
"""


def start_readers(
    count: int, clients_each: int, queries_each: int, texts: list[str], env: dict
) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(clients_each), str(queries_each), "|".join(texts)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def memory_and_throughput(n: int, processes: int, clients: int, texts: list[str], env: dict) -> dict:
    """`processes` readers report memory; then 2 of them run `clients` threads between them."""
    readers = start_readers(processes, max(1, clients // 2), 10, texts, env)
    try:
        ready = [json.loads(reader.stdout.readline()) for reader in readers]
        memory = [r["memory"] for r in ready]
        for r in ready:
            r["memory"]["index_private"] = r["memory"]["private"] - r["before"]["private"]
            r["memory"]["index_rss"] = r["memory"]["rss"] - r["before"]["rss"]
        for reader in readers[:2]:
            reader.stdin.write("go\n")
            reader.stdin.flush()
        runs = [json.loads(reader.stdout.readline()) for reader in readers[:2]]
    finally:
        for reader in readers:
            reader.kill()
            reader.wait()
    latencies = [value for run in runs for value in run["latencies"]]
    seconds = max(run["seconds"] for run in runs)
    return {
        "memory": memory,
        "vectors_mb": n * DIM * 2 / 2**20,
        "throughput": len(latencies) / seconds,
        "parallel": percentiles(latencies),
    }


def freshness(user_model, env: dict) -> dict:
    """run_indexer beside a reader: seconds from a committed visibility change to searches seeing it."""
    from gallery.models import Image, Region
    from search.index import IndexReader, Visibility
    from search.vision.identity import current_model

    model_name, dim = current_model()
    indexer = subprocess.Popen(
        [sys.executable, "manage.py", "run_indexer"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    reader = IndexReader(model_name=model_name, dim=dim, directory=Path(env["INDEX_DIR"]))
    stranger = user_model.objects.get(username="user1")
    image = Image.objects.filter(is_public=False).exclude(owner=stranger).order_by("pk").first()
    region = Region.objects.filter(image=image).order_by("pk").first()
    lags = []
    try:
        for round_number in range(11):  # round 0 waits for the indexer to start; it is not counted
            public = round_number % 2 == 0
            Image.objects.filter(pk=image.pk).update(is_public=public)
            started = time.perf_counter()
            while True:
                found = region.pk in set(
                    reader.search(region.vector, 5, visibility=Visibility(user_id=stranger.pk))[1][0].tolist()
                )
                if found == public:
                    break
                if time.perf_counter() - started > 120:
                    raise RuntimeError("the change never reached the reader")
                time.sleep(0.005)
            if round_number:
                lags.append(time.perf_counter() - started)
    finally:
        os.killpg(indexer.pid, signal.SIGTERM)
        indexer.wait()
    return {"freshness": f"median {statistics.median(lags):.2f} s, max {max(lags):.2f} s"}


def run(n: int, args, env: dict) -> dict:
    from django.db import connection

    connection.close()
    recreate_database()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from search.index import get_writer, reset_index
    from search.vision.identity import current_model

    model_name, _ = current_model()
    rng = np.random.default_rng(n)
    started = time.perf_counter()
    users = fill(n, rng, model_name)
    fill_seconds = time.perf_counter() - started
    reset_index()
    started = time.perf_counter()
    count = get_writer().rebuild()
    rebuild_seconds = time.perf_counter() - started
    assert count == n, (count, n)

    texts = [" ".join(rng.choice(WORDS, size=4)) for _ in range(QUERIES)]
    result = {"n": n, "fill": fill_seconds, "rebuild": rebuild_seconds}
    result.update(latency(n, users[0], texts))
    connection.close()
    result.update(memory_and_throughput(n, args.processes, args.clients, texts, env))
    result.update(freshness(get_user_model(), env))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--processes", type=int, default=4, help="reader processes whose memory is measured")
    parser.add_argument("--clients", type=int, default=8, help="concurrent searches, over 2 processes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imgsearch-search-bench-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
        "IMGSEARCH_MODEL_PROFILE": "full",
        "CLIP_PRETRAINED": "",  # ViT-B-32 with random weights: the text tower costs the same
        "INDEX_DIR": str(work / "index"),
        "MEDIA_ROOT": str(work / "media"),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    env = {**os.environ}
    import django

    django.setup()
    import torch

    print(
        f"threads={torch.get_num_threads()} queries={QUERIES} dim={DIM} processes={args.processes} "
        f"clients={args.clients}",
        flush=True,
    )
    rows = []
    for n in args.sizes:
        r = run(n, args, env)
        rows.append(r)
        memory = r["memory"]
        print(
            f"\nN={n:,}: eligible {r['eligible']:,}, fill {r['fill']:.0f} s, rebuild {r['rebuild']:.1f} s", flush=True
        )
        print(f"  one at a time: index step {r['index']}; search service {r['service']}; recall@10 {r['recall']:.3f}")
        print(f"  service stages (medians): {r['stages']}")
        print(f"  {args.clients} clients over 2 processes: {r['throughput']:.1f} searches/s, {r['parallel']}")
        print(
            f"  {args.processes} readers, vectors {r['vectors_mb']:.0f} MB: "
            + "; ".join(f"RSS {m['rss']:.0f} / PSS {m['pss']:.0f} / private {m['private']:.0f} MB" for m in memory)
        )
        print(
            f"  total PSS {sum(m['pss'] for m in memory):.0f} MB, total private {sum(m['private'] for m in memory):.0f} MB"
        )
        print(
            "  opening the index and searching added, per reader: "
            + "; ".join(f"RSS +{m['index_rss']:.0f} MB (private +{m['index_private']:.0f} MB)" for m in memory)
        )
        print(f"  freshness with run_indexer: {r['freshness']}", flush=True)


if __name__ == "__main__":
    main()
