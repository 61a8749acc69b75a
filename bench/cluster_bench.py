"""A cluster on one box under load (issue 31): two nodes, each with its own var folder and index
(gunicorn with WEB_WORKERS processes, and run_indexer), two run_workers, one PostgreSQL (a scratch
database, imgsearch_cluster, dropped first), one Redis broker (database 12, flushed) and the media
on a real S3 API (moto's server, a process of its own).

    .venv/bin/python -m bench.cluster_bench --models demo --clients 50

Each client has its own account and token; client n works on node a when n is even, b when odd:
it uploads --uploads photos there (one request each), then runs --searches text searches,
alternating between the two nodes. Meanwhile a probe account uploads one photo at a time to node a
and times how long until a search on node b finds it (upload to searchable on the other node:
the queue behind the clients' photos, a worker's first stage, node b's indexer).

Reported: requests and errors by endpoint and status (connection errors and timeouts included),
p50/p95/max per endpoint and node, accepted uploads per minute, the probe's times, and how long the
workers took to make every photo searchable.
"""

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_bench import MODELS, QUERIES, free_port, jpeg, percentile  # noqa: E402

DATABASE = "imgsearch_cluster"
REDIS_URL = "redis://127.0.0.1:6379/12"


def moto_server(port: int, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def main() -> None:  # noqa: PLR0915 (one scenario, read top to bottom)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", choices=sorted(MODELS), default="demo")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--uploads", type=int, default=2)
    parser.add_argument("--searches", type=int, default=10)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--drain-seconds", type=float, default=1800)
    args = parser.parse_args()

    import boto3
    import requests

    work = Path(tempfile.mkdtemp(prefix="imgsearch-cluster-"))
    logs = work / "logs"
    logs.mkdir()
    s3_port = free_port()
    s3 = moto_server(s3_port, open(logs / "s3.log", "w"))  # noqa: SIM115 (closed with the process)
    s3_url = f"http://127.0.0.1:{s3_port}"
    keys = {"access_key": "bench", "secret_key": "bench-secret", "region_name": "us-east-1"}
    for _ in range(300):
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{s3_url}/moto-api/", timeout=2).ok:
                break
        time.sleep(0.2)
    boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id=keys["access_key"],
        aws_secret_access_key=keys["secret_key"],
        region_name=keys["region_name"],
    ).create_bucket(Bucket="photos")
    env = {
        **os.environ,
        **MODELS[args.models],
        "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "REDIS_URL": REDIS_URL,
        "MEDIA_STORAGE": "storages.backends.s3.S3Storage",
        "MEDIA_STORAGE_OPTIONS": json.dumps({"bucket_name": "photos", "endpoint_url": s3_url, **keys}),
        "LOG_LEVEL": "WARNING",
        "LIBRARY_WATCH": "false",
    }
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c", f"DROP DATABASE IF EXISTS {DATABASE}"], check=True
    )
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {DATABASE}"], check=True)
    subprocess.run(["redis-cli", "-n", REDIS_URL.rsplit("/", 1)[1], "FLUSHDB"], check=True, capture_output=True)
    os.environ.update({**env, "IMGSEARCH_VAR_DIR": str(work / "var")})
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from gallery.models import Image
    from gallery.tokens import token_create

    call_command("migrate", verbosity=0)
    users = [get_user_model().objects.create_user(f"client{n}") for n in range(args.clients + 1)]
    tokens = [token_create(user=user, name="cluster")[1] for user in users]
    probe_token = tokens.pop()
    connection.close()

    processes = []
    nodes = {}
    for name in ("a", "b"):
        node_env = {**env, "IMGSEARCH_VAR_DIR": str(work / name / "var"), "INDEX_DIR": str(work / name / "index")}
        port = free_port()
        nodes[name] = f"http://127.0.0.1:{port}"
        for kind, command in (
            ("indexer", [sys.executable, "manage.py", "run_indexer"]),
            (
                "web",
                ["make", "--no-print-directory", "-s", "web", "HOST=127.0.0.1", f"PORT={port}", f"PY={sys.executable}"],
            ),
        ):
            with open(logs / f"{name}-{kind}.log", "w") as log:
                processes.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=node_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
    for number in (1, 2):
        with open(logs / f"worker-{number}.log", "w") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "run_worker"],
                    cwd=ROOT,
                    env={**env, "IMGSEARCH_VAR_DIR": str(work / f"worker-{number}")},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        for url in nodes.values():
            for _ in range(900):
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{url}/healthz", timeout=2).ok:
                        break
                time.sleep(0.2)

        def found(node: str, token: str, image_id: int, session) -> bool:
            with contextlib.suppress(requests.RequestException):
                response = session.post(
                    f"{nodes[node]}/api/search/",
                    json={"text": "a photo", "min_score": -1},
                    headers={"Authorization": f"Token {token}"},
                    timeout=60,
                )
                return response.ok and image_id in {r["image_id"] for r in response.json()["results"]}
            return False

        def client(index: int) -> list[tuple[str, str, object, float]]:
            home = "ab"[index % 2]
            headers = {"Authorization": f"Token {tokens[index]}"}
            rows = []
            with requests.Session() as session:
                for k in range(args.uploads):
                    started = time.perf_counter()
                    try:
                        response = session.post(
                            f"{nodes[home]}/api/images/",
                            files={
                                "files": (
                                    f"{index}-{k}.jpg",
                                    jpeg(1024, 768, 1000 + index * args.uploads + k),
                                    "image/jpeg",
                                )
                            },
                            headers=headers,
                            timeout=120,
                        )
                        outcome: object = response.status_code
                    except requests.RequestException as error:
                        outcome = type(error).__name__
                    rows.append(("upload", home, outcome, time.perf_counter() - started))
                for number in range(args.searches):
                    node = "ab"[(index + number) % 2]
                    started = time.perf_counter()
                    try:
                        response = session.post(
                            f"{nodes[node]}/api/search/",
                            json={"text": QUERIES[number % len(QUERIES)]},
                            headers=headers,
                            timeout=120,
                        )
                        outcome = response.status_code
                    except requests.RequestException as error:
                        outcome = type(error).__name__
                    rows.append(("search", node, outcome, time.perf_counter() - started))
            return rows

        def probe() -> list[float]:
            seconds = []
            with requests.Session() as session:
                for number in range(args.probes):
                    started = time.perf_counter()
                    response = session.post(
                        f"{nodes['a']}/api/images/",
                        files={"files": (f"probe-{number}.jpg", jpeg(1024, 768, 90_000 + number), "image/jpeg")},
                        headers={"Authorization": f"Token {probe_token}"},
                        timeout=120,
                    )
                    image_id = response.json()[0]["image"]["id"]
                    while not found("b", probe_token, image_id, session):
                        if time.perf_counter() - started > args.drain_seconds:
                            break
                        time.sleep(0.25)
                    seconds.append(time.perf_counter() - started)
            return seconds

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients + 1) as executor:
            probing = executor.submit(probe)
            results = [row for rows in executor.map(client, range(args.clients)) for row in rows]
            wall = time.perf_counter() - started
            probe_seconds = probing.result()
        uploaded = args.clients * args.uploads + args.probes
        while time.perf_counter() - started < args.drain_seconds:
            if Image.objects.filter(status__in=["ready", "failed"]).count() >= uploaded:
                break
            time.sleep(1)
        searchable = time.perf_counter() - started
        statuses = Counter(Image.objects.values_list("status", flat=True))
        connection.close()
    finally:
        for process in [*processes, s3]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*processes, s3]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    by_endpoint = defaultdict(list)
    errors = Counter()
    accepted = 0
    for endpoint, node, outcome, seconds in results:
        by_endpoint[(endpoint, node)].append(seconds)
        if not (isinstance(outcome, int) and outcome < 400):
            errors[(endpoint, node, outcome)] += 1
        elif endpoint == "upload":
            accepted += 1
    print(
        f"models={args.models} clients={args.clients} uploads/client={args.uploads} searches/client={args.searches} "
        f"cores={os.cpu_count()} nodes=2 x WEB_WORKERS={os.environ.get('WEB_WORKERS', '2')} workers=2 media=S3 (moto)"
    )
    print(f"{len(results)} requests in {wall:.1f} s; {accepted} uploads accepted: {accepted / wall * 60:.0f} a minute")
    for (endpoint, node), seconds in sorted(by_endpoint.items()):
        print(
            f"  {endpoint:7} node {node} n={len(seconds):4}  p50 {percentile(seconds, 0.5) * 1000:6.0f} ms  "
            f"p95 {percentile(seconds, 0.95) * 1000:6.0f} ms  max {max(seconds) * 1000:6.0f} ms"
        )
    print(f"errors: {dict(errors) if errors else 0}")
    print(
        "upload on node a to found on node b (probe, under the load): "
        + ", ".join(f"{s:.1f}" for s in probe_seconds)
        + f" s (median {statistics.median(probe_seconds):.1f} s)"
    )
    print(f"every photo searchable {searchable:.0f} s after the first request: {dict(statuses)} (of {uploaded})")
    print(f"logs: {logs}")


if __name__ == "__main__":
    main()
