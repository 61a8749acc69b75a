"""The web servers as they really run: `make web` (gunicorn, what `make run` serves with) and
runserver (`make dev`), as processes of their own against the test database.

Many clients at once must never hold more PostgreSQL connections than the pool allows, and no
connection may outlive the requests that used it (runserver's thread per request once left one
open connection per thread behind).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection

from gallery.tokens import token_create
from tests.conftest import child_env, make_user, stop_process_group
from tests.servers import WEB_THREADS, WEB_WORKERS, Server, free_port, server_command, server_env

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def server_connections(*, besides: int | None = None) -> int:
    """Connections to the test database other than this thread's own (and `besides`, a backend pid)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND pid <> %s",
            [besides or 0],
        )
        return cursor.fetchone()[0]


class PeakConnections(threading.Thread):
    """Samples the server's connection count while requests are in flight."""

    def __init__(self):
        super().__init__(daemon=True)
        connection.ensure_connection()
        self.test_backend = connection.connection.info.backend_pid  # the test thread's own connection
        self.peak = 0
        self.done = threading.Event()

    def run(self):
        from django.db import connections

        try:
            while not self.done.is_set():
                self.peak = max(self.peak, server_connections(besides=self.test_backend))
                time.sleep(0.02)
        finally:
            connections.close_all()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *_):
        self.done.set()
        self.join()


def hammer(server: Server, token: str, clients: int, requests: int | None = None) -> list[int]:
    """`requests` requests from `clients` at once, half listing images, half searching by text; their statuses."""

    def call(number: int) -> int:
        if number % 2:
            request = urllib.request.Request(f"{server.url}/api/images/")
        else:
            request = urllib.request.Request(
                f"{server.url}/api/search/",
                data=json.dumps({"text": f"a red circle {number}"}).encode(),
                headers={"Content-Type": "application/json"},
            )
        request.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(call, range(requests or clients)))


def settled_connections(seconds: float = 5.0) -> int:
    """The server's connections once they stop falling (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    count = server_connections()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        count, before = server_connections(), count
        if count == before:
            break
    return count


def test_gunicorn_never_holds_more_connections_than_its_pools(serve):
    token = token_create(user=make_user("many"))[1]
    server = serve("make web")
    with PeakConnections() as sampler:
        statuses = hammer(server, token, clients=60)
    assert statuses == [200] * 60, server.log()
    pooled = WEB_WORKERS * WEB_THREADS
    assert 0 < sampler.peak <= pooled, f"{sampler.peak} connections at once; the pools allow {pooled}"
    # The pools keep their connections for the next requests (until a minute idle), still bounded.
    assert settled_connections() <= pooled


def test_runserver_leaves_no_connection_behind(serve):
    token = token_create(user=make_user("many"))[1]
    server = serve("runserver")
    # runserver queues only 10 waiting connections (the rest are reset): fewer clients, more requests.
    statuses = hammer(server, token, clients=6, requests=30)
    assert statuses == [200] * 30, server.log()
    assert settled_connections() == 0


def test_the_worker_refuses_a_connection_pool(settings):
    env = {**server_env(settings), "DB_POOL": "true"}
    result = subprocess.run(
        [sys.executable, "manage.py", "run_worker", "--recover-only"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "must not pool connections" in result.stderr


def test_make_run_says_it_is_up_once_it_answers_and_stops_on_ctrl_c_within_five_seconds(settings, tmp_path):
    """As a newcomer meets it: the start line when requests are answered (it came 60-75 s before,
    while each worker loaded CLIP), and Ctrl-C (SIGINT to the terminal's whole process group) stops
    the web server, the worker and the indexer in under 5 s, no worker SIGKILLed (it took ~22 s)."""
    port = free_port()
    log_path = tmp_path / "make-run.log"
    env = child_env(settings, WEB_WORKERS="2", WEB_THREADS="2", TORCH_THREADS="1")
    command = ["make", "--no-print-directory", "-s", "run", "HOST=127.0.0.1", f"PORT={port}", f"PY={sys.executable}"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while "imgsearch on http://" not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-5000:]
            time.sleep(0.05)
        # Said only once it answers: the same moment, /healthz answers.
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
        token = token_create(user=make_user("visitor"))[1]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/images/")
        request.add_header("Authorization", f"Token {token}")
        assert urllib.request.urlopen(request, timeout=30).status == 200

        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does
        while True:
            process.poll()  # make itself, reaped once it exits
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() - started < 5, (
                f"still running after 5 s: {left_in_group(process.pid)}\n{log_path.read_text()[-5000:]}"
            )
            time.sleep(0.05)
    finally:
        stop_process_group(process, signal.SIGKILL)
    log = log_path.read_text()
    assert "SIGKILL" not in log and "Traceback" not in log, log[-5000:]


def left_in_group(pgid: int) -> str:
    """What is still running in the process group, for a failure message."""
    listing = subprocess.run(
        ["ps", "-o", "pid,stat,args", "-g", str(pgid)], check=False, capture_output=True, text=True
    )
    return listing.stdout


@pytest.mark.parametrize("share", [True, False])
def test_gunicorns_workers_share_one_clip_loaded_before_they_fork(settings, tmp_path, share):
    """Issue 31: every web process loaded a CLIP of its own (with the default model ~1 GB private
    each; bench/web_memory.py). With WEB_SHARE_MODEL (the default) gunicorn's master loads it once,
    before it forks its workers; they search with that copy (torch works after the fork) and load
    none of their own. Off, each worker loads its own, as before."""
    token = token_create(user=make_user("searcher"))[1]
    port = free_port()
    env = {**server_env(settings), "WEB_SHARE_MODEL": "true" if share else "false"}
    server = Server(server_command("make web", port), env, port, tmp_path / "web.log")
    try:
        statuses = hammer(server, token, clients=8, requests=24)
        assert statuses == [200] * 24, server.log()
        log = server.log_path.read_text()
    finally:
        server.stop()
    loads = log.count("Loaded CLIP")
    if share:
        assert loads == 1 and log.index("Loaded CLIP") < log.index("Booting worker"), log[-5000:]
    else:
        assert loads == WEB_WORKERS, log[-5000:]
