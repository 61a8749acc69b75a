"""Many clients at once against the processes `make run` starts: gunicorn (`make web`), one
`run_worker` and `run_indexer`, on PostgreSQL + Redis.

    .venv/bin/python bench/load_bench.py --models demo --clients 50

Each client has its own account and token. It uploads 2 photos (one request each), then runs 10
searches, alternating text and by-image (a query photo, multipart), as fast as answers come. Before
the load, the same searches run one at a time: what one request costs when it has the machine to
itself, so the throughput under load can be read against what the cores allow.

Reported: every error by status (connection resets and timeouts included), p50/p95/max per endpoint,
requests per second, the peak number of PostgreSQL connections to the bench database (sampled every
50 ms) against the web pools' bound (WEB_WORKERS x DB_POOL_SIZE) plus the worker's and indexer's own,
and how long the worker took to finish the uploaded photos. LOAD_TIMELINE=1 also prints the 15
slowest requests with their start times. Runs on a throwaway database
(imgsearch_load, dropped first), Redis database 13 (flushed) and media folder.
"""

import argparse
import contextlib
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline_seconds import PROFILES, scene  # noqa: E402

DATABASE = "imgsearch_load"
REDIS_URL = "redis://127.0.0.1:6379/13"
MODELS = {**PROFILES, "demo": {"IMGSEARCH_MODEL_PROFILE": "demo"}}
QUERIES = ["a red circle", "a blue square", "a green triangle", "a yellow star", "two shapes on grey"]


def jpeg(width: int, height: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    scene(width, height, seed).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Connections(threading.Thread):
    """Peak PostgreSQL connections to the bench database, sampled every 50 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak: Counter = Counter()
        self.stopping = threading.Event()

    def count(self) -> Counter:
        out = subprocess.run(
            [
                "psql",
                "-Atq",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                f"SELECT application_name FROM pg_stat_activity WHERE datname = '{DATABASE}'",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return Counter(line or "other" for line in out.stdout.splitlines())

    def run(self):
        while not self.stopping.is_set():
            now = self.count()
            now["all"] = sum(now.values())
            self.peak = self.peak | now  # the most of each at any one time
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", choices=sorted(MODELS), default="demo")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--uploads", type=int, default=2)
    parser.add_argument("--searches", type=int, default=10)
    parser.add_argument("--drain-seconds", type=float, default=900, help="how long to wait for the worker afterwards")
    args = parser.parse_args()

    import requests

    work = Path(tempfile.mkdtemp(prefix="imgsearch-load-"))
    port = free_port()
    env = {
        **os.environ,
        **MODELS[args.models],
        "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "REDIS_URL": REDIS_URL,
        "IMGSEARCH_VAR_DIR": str(work / "var"),
        "MEDIA_ROOT": str(work / "media"),
        "LOG_LEVEL": "WARNING",
        "SIGNUP_RATE_PER_HOUR": "1000",
    }
    os.environ.update(env)
    subprocess.run(
        [
            "psql",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-c",
            f"DROP DATABASE IF EXISTS {DATABASE}",
            "-c",
            f"CREATE DATABASE {DATABASE}",
        ],
        check=True,
    )
    subprocess.run(["redis-cli", "-n", REDIS_URL.rsplit("/", 1)[1], "FLUSHDB"], check=True, capture_output=True)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from gallery.models import Image
    from gallery.tokens import token_create

    call_command("migrate", verbosity=0)
    users = [get_user_model().objects.create_user(f"client{n}") for n in range(args.clients)]
    tokens = [token_create(user=user, name="load")[1] for user in users]
    photos = [[jpeg(1024, 768, 1000 + n * args.uploads + k) for k in range(args.uploads)] for n in range(args.clients)]
    query_photo = jpeg(512, 384, 7)
    connection.close()

    logs = work / "logs"
    logs.mkdir()
    processes = []
    for name, command in [
        ("indexer", [sys.executable, "manage.py", "run_indexer"]),
        ("worker", [sys.executable, "manage.py", "run_worker"]),
        (
            "web",
            ["make", "--no-print-directory", "-s", "web", "HOST=127.0.0.1", f"PORT={port}", f"PY={sys.executable}"],
        ),
    ]:
        with open(logs / f"{name}.log", "w") as log:  # PGAPPNAME: whose connections pg_stat_activity shows
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env={**env, "PGAPPNAME": name},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{base}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        web_workers = int(env.get("WEB_WORKERS", 2))
        pool = web_workers * settings.DB_POOL_SIZE

        def search(token: str, number: int, session) -> tuple[str, object, float]:
            started = time.perf_counter()
            headers = {"Authorization": f"Token {token}"}
            try:
                if number % 2 == 0:
                    endpoint = "search (text)"
                    response = session.post(
                        f"{base}/api/search/",
                        json={"text": QUERIES[number % len(QUERIES)]},
                        headers=headers,
                        timeout=120,
                    )
                else:
                    endpoint = "search (image)"
                    response = session.post(
                        f"{base}/api/search/",
                        files={"image": ("query.jpg", query_photo, "image/jpeg")},
                        headers=headers,
                        timeout=120,
                    )
                outcome = response.status_code
            except requests.RequestException as error:
                outcome = type(error).__name__
            finished = time.perf_counter()
            timeline.append((started - t0, finished - started, endpoint, number))
            return endpoint, outcome, finished - started

        timeline = []
        t0 = time.perf_counter()

        # Alone: what one search costs with the machine to itself (both web processes warmed first).
        with requests.Session() as session:
            for number in range(8):
                search(tokens[0], number, session)
            alone = defaultdict(list)
            for number in range(10):
                endpoint, outcome, seconds = search(tokens[0], number, session)
                alone[endpoint].append(seconds)

        def client(index: int) -> list[tuple[str, object, float]]:
            results = []
            headers = {"Authorization": f"Token {tokens[index]}"}
            with requests.Session() as session:
                for k, data in enumerate(photos[index]):
                    started = time.perf_counter()
                    try:
                        response = session.post(
                            f"{base}/api/images/",
                            files={"files": (f"{index}-{k}.jpg", data, "image/jpeg")},
                            headers=headers,
                            timeout=120,
                        )
                        outcome = response.status_code
                    except requests.RequestException as error:
                        outcome = type(error).__name__
                    results.append(("upload", outcome, time.perf_counter() - started))
                for number in range(args.searches):
                    results.append(search(tokens[index], number, session))
            return results

        sampler = Connections()
        baseline = sampler.count()
        sampler.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as executor:
            results = [row for rows in executor.map(client, range(args.clients)) for row in rows]
        wall = time.perf_counter() - started
        sampler.stopping.set()
        sampler.join()

        uploaded = args.clients * args.uploads
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < args.drain_seconds:
            connection.close()
            done = Image.objects.filter(status__in=["ready", "failed"]).count()
            if done >= Image.objects.count() >= uploaded:
                break
            time.sleep(1)
        drained = wall + time.monotonic() - drain_started
        counts = Counter(Image.objects.values_list("status", flat=True))
        connection.close()
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    by_endpoint = defaultdict(list)
    errors = Counter()
    for endpoint, outcome, seconds in results:
        by_endpoint[endpoint].append(seconds)
        if not (isinstance(outcome, int) and outcome < 400):
            errors[(endpoint, outcome)] += 1
    print(
        f"models={args.models} clients={args.clients} uploads/client={args.uploads} searches/client={args.searches} "
        f"cores={os.cpu_count()} WEB_WORKERS={web_workers} WEB_THREADS={os.environ.get('WEB_THREADS', '4')} "
        f"DB_POOL_SIZE={settings.DB_POOL_SIZE}"
    )
    for endpoint, seconds in alone.items():
        print(f"alone: {endpoint} median {statistics.median(seconds) * 1000:.0f} ms")
    print(f"{len(results)} requests in {wall:.1f} s: {len(results) / wall:.1f} requests/s")
    for endpoint, seconds in sorted(by_endpoint.items()):
        print(
            f"  {endpoint:15} n={len(seconds):4}  p50 {percentile(seconds, 0.5) * 1000:6.0f} ms  "
            f"p95 {percentile(seconds, 0.95) * 1000:6.0f} ms  max {max(seconds) * 1000:6.0f} ms"
        )
    print(f"errors: {dict(errors) if errors else 0}")
    print(
        f"PostgreSQL connections at peak: {sampler.peak['all']} in all; web {sampler.peak['web']} (its pools allow "
        f"{pool}), worker {sampler.peak['worker']}, indexer {sampler.peak['indexer']}; before the load: {dict(baseline)}"
    )
    print(f"images {drained:.0f} s after the first request: {dict(counts)} (of {uploaded} uploaded)")
    print(f"logs: {logs}")
    if os.environ.get("LOAD_TIMELINE"):
        for row in sorted(timeline, key=lambda r: -r[1])[:15]:
            print(f"slow: start {row[0]:.2f} s, {row[1]:.2f} s, {row[2]} #{row[3]}")


if __name__ == "__main__":
    main()
