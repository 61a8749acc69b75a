"""Issue 31: imgsearch as a cluster on one box, every part a real process. Two nodes, each with its own
var folder and index (`make web` and `manage.py run_indexer`); two workers (`run_worker`); one
PostgreSQL, one Redis broker, and the media on a real S3 API (moto's server, through
django-storages), so no process reads another's disk.

A photo uploaded on one node is processed by whichever worker takes it and found by searches on
both nodes; a node and a worker killed -9 leave the rest working; the node started again catches
up from the database's change feed.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from gallery.models import Image
from gallery.tokens import token_create
from tests import images
from tests.conftest import child_env, make_user, stop_process_group
from tests.s3 import S3Server
from tests.servers import Server, free_port, server_command

ROOT = Path(__file__).resolve().parents[1]
REDIS_CLUSTER_URL = "redis://127.0.0.1:6379/14"
FAST_RECOVERY = {"PROCESSING_HEARTBEAT_SECONDS": "0.5", "PROCESSING_STALE_SECONDS": "3", "RECOVERY_SWEEP_SECONDS": "1"}

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def started(args: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    with open(log_path, "a") as log:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


class Node:
    """A machine serving searches: its web server and its index writer, on an index of its own."""

    def __init__(self, name: str, env: dict, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.name, self.folder = name, folder
        self.env = {**env, "INDEX_DIR": str(folder / "index"), "IMGSEARCH_VAR_DIR": str(folder / "var")}
        self.web: Server | None = None
        self.indexer: subprocess.Popen | None = None

    def start(self) -> "Node":
        self.indexer = started([sys.executable, "manage.py", "run_indexer"], self.env, self.folder / "indexer.log")
        port = free_port()
        self.web = Server(server_command("make web", port), self.env, port, self.folder / "web.log")
        return self

    def kill(self) -> None:
        for process in (self.web.process, self.indexer):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()
        if self.indexer is not None:
            stop_process_group(self.indexer)

    def found(self, token: str) -> set[int]:
        """The photos a search on this node finds (every one it has, at min_score -1); none while its
        index is being built."""
        try:
            response = requests.post(
                f"{self.web.url}/api/search/",
                json={"text": "a photo", "min_score": -1},
                headers={"Authorization": f"Token {token}"},
                timeout=30,
            )
        except requests.RequestException:
            return set()
        return {result["image_id"] for result in response.json()["results"]} if response.ok else set()

    def upload(self, token: str, seed: int) -> int:
        response = requests.post(
            f"{self.web.url}/api/images/",
            files={"files": (f"{seed}.png", images.png(seed=seed), "image/png")},
            headers={"Authorization": f"Token {token}"},
            timeout=60,
        )
        assert response.status_code == 201, response.text
        return response.json()[0]["image"]["id"]

    def log(self) -> str:
        return "".join(
            f"\n--- {self.name} {part} ---\n" + (self.folder / f"{part}.log").read_text()[-3000:]
            for part in ("web", "indexer")
            if (self.folder / f"{part}.log").exists()
        )


def until(predicate, timeout: float, why) -> float:
    """Seconds until `predicate()` holds; an AssertionError saying `why()` after `timeout`."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, why()
        time.sleep(0.2)
    return time.monotonic() - start


def test_two_nodes_two_workers_one_database_broker_and_bucket_carry_on_when_a_node_and_a_worker_die(
    settings, s3_server, tmp_path
):
    import redis

    redis.Redis.from_url(REDIS_CLUSTER_URL).flushdb()
    bucket = s3_server.new_bucket()
    env = child_env(
        settings,
        **S3Server.environment(bucket),
        **FAST_RECOVERY,
        REDIS_URL=REDIS_CLUSTER_URL,
        WEB_WORKERS="1",
        WEB_THREADS="2",
        TORCH_THREADS="1",
        Q_WORKERS="1",
        LIBRARY_WATCH="false",
    )
    token = token_create(user=make_user("clustered"))[1]
    nodes = {name: Node(name, env, tmp_path / name) for name in ("a", "b")}
    workers = [started([sys.executable, "manage.py", "run_worker"], env, tmp_path / f"worker-{n}.log") for n in (1, 2)]

    def logs() -> str:
        worker_logs = "".join((tmp_path / f"worker-{n}.log").read_text()[-3000:] for n in (1, 2))
        return "".join(node.log() for node in nodes.values()) + worker_logs

    try:
        for node in nodes.values():
            node.start()
        uploaded = time.monotonic()
        first = nodes["a"].upload(token, seed=1)
        seconds: dict[str, float] = {}

        def on_both() -> bool:
            for name, node in nodes.items():
                if name not in seconds and first in node.found(token):
                    seconds[name] = time.monotonic() - uploaded
            return len(seconds) == len(nodes)

        until(on_both, 120, logs)
        print(
            f"\ncluster: uploaded on node a, found on a after {seconds['a']:.1f} s and on b after {seconds['b']:.1f} s"
        )

        # Node a (its web server and its indexer) and a worker die at once; the rest carries on.
        nodes["a"].kill()
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait()
        second = nodes["b"].upload(token, seed=2)
        until(lambda: nodes["b"].found(token) == {first, second}, 120, logs)

        # Node a comes back on its old index and catches up from the feed.
        back = time.monotonic()
        nodes["a"].start()
        until(lambda: nodes["a"].found(token) == {first, second}, 120, logs)
        print(f"cluster: node a, started again, found what it missed {time.monotonic() - back:.1f} s after its start")
    finally:
        for node in nodes.values():
            node.stop()
        for worker in workers:
            stop_process_group(worker)
    stored = s3_server.names(bucket["bucket_name"], "originals/")
    assert sorted(Image.objects.values_list("file", flat=True)) == stored  # the originals are in the bucket
    assert set(Image.objects.values_list("status", flat=True)) == {"ready"}
    assert not Path(settings.MEDIA_ROOT).exists()  # nobody wrote to a local media folder
