import os
import signal
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django_q.conf import Conf

from search.index import reset_index
from tests import images


def pytest_sessionstart(session):
    """Drop the test databases of earlier runs on this host whose process is gone (killed, crashed):
    each run names its own (tests/settings.py), and pytest-django drops it only when it ends cleanly."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return
    prefix = settings.TEST_DATABASE_PREFIX
    try:
        with psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"],
                             dbname="postgres", autocommit=True, connect_timeout=5) as admin:  # fmt: skip
            names = [
                row[0] for row in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"])
            ]
            for name in names:
                pid = name[len(prefix) :]
                if pid.isascii() and pid.isdigit() and not _process_alive(int(pid)):
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        return  # the tests that need PostgreSQL say so themselves


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Each test gets its own MEDIA_ROOT and index folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.INDEX_DIR = tmp_path / "index"
    reset_index()
    yield
    reset_index()


FEED_TRIGGERS = ("gallery_region_feed", "gallery_image_feed_update", "gallery_image_feed_delete")


@pytest.fixture(autouse=True)
def feed_rows_written_at_once(request):
    """On PostgreSQL the change feed's triggers fire at COMMIT, and a test inside Django's test
    transaction never commits: there they fire per statement instead. Tests with real commits
    (transactional_db, live_server) keep the production behaviour."""
    if "db" not in request.fixturenames or {"transactional_db", "live_server"} & set(request.fixturenames):
        return
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction"):
        return
    request.getfixturevalue("db")
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET CONSTRAINTS {', '.join(FEED_TRIGGERS)} IMMEDIATE")


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttle counts live in the cache; each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def synchronous_tasks(monkeypatch):
    """django-q2 runs tasks in-process unless a test starts a real cluster (see test_worker)."""
    monkeypatch.setattr(Conf, "SYNC", True)


# A Redis database of its own for tests that use the Redis broker.
REDIS_TEST_URL = "redis://127.0.0.1:6379/15"


def terminate_database_connection() -> None:
    """Kill this thread's PostgreSQL connection from another one: what a database restart does to
    every open connection."""
    from django.db import connection, connections

    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    finally:
        killer.close()


@pytest.fixture
def private_postgresql(transactional_db):
    """This test's database on a PostgreSQL cluster of its own (tests/postgres_cluster.py), to stop and
    restart at will. List it before the fixtures that make rows (owner) and before `child_env`'s
    processes, so they all use it; the test database proper is back for the next test."""
    from django.core.management import call_command
    from django.db import connection

    from tests.postgres_cluster import MISSING, PostgresCluster

    if MISSING:
        pytest.skip(MISSING)
    cluster = PostgresCluster()
    saved = dict(connection.settings_dict)
    try:
        cluster.start()
        cluster.createdb("imgsearch")
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(cluster.port), NAME="imgsearch")
        call_command("migrate", verbosity=0)
        yield cluster
    finally:
        connection.close()
        connection.settings_dict.update(saved)
        cluster.destroy()


def child_env(settings, **extra) -> dict:
    """The environment of a real process (worker, indexer, web server) that works on this test's
    database, media folder and index."""
    from django.db import connection

    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "INDEX_DIR": str(settings.INDEX_DIR),
        "PYTHONUNBUFFERED": "1",  # a killed process's last lines are the interesting ones
        **extra,
    }


def stop_process_group(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal a process started with start_new_session=True and all its children; kill -9 after 30 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def serve(settings, tmp_path):
    """serve("make web") or serve("runserver"): a web server process on a free port, stopped after the test."""
    from tests.servers import Server, free_port, server_command, server_env

    servers = []

    def start(kind: str) -> Server:
        port = free_port()
        log_path = tmp_path / f"{kind.replace(' ', '-')}.log"
        servers.append(Server(server_command(kind, port), server_env(settings), port, log_path))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto's server mode, a process of its own) for the whole session."""
    from tests.s3 import S3Server

    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_storage(settings, s3_server):
    """The media on a fresh bucket of s3_server through django-storages' S3Storage, as
    MEDIA_STORAGE=storages.backends.s3.S3Storage sets it; yields the storage's options."""
    options = s3_server.new_bucket()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    yield options


def make_user(username: str):
    return get_user_model().objects.create_user(username=username, password=f"{username}-pass-123")


@pytest.fixture
def owner(db):
    return make_user("owner")


@pytest.fixture
def friend(db):
    return make_user("friend")


@pytest.fixture
def stranger(db):
    return make_user("stranger")


def upload_file(data: bytes, name: str = "photo.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.fixture
def upload_heldout(owner, demo_profile, django_capture_on_commit_callbacks):
    """upload_heldout(split, count, seed=, cast=) -> (api, scenes, ids): `count` of bench/heldout.py's
    scenes on the split's backgrounds (in a camera cast of that strength), uploaded by `owner` through
    the API in one request and processed on the demo profile; `api` is owner's client, `ids` the
    photos' ids by file name."""
    import numpy as np
    from django.urls import reverse
    from rest_framework.test import APIClient

    from bench import heldout

    def _upload(split: str, count: int, *, seed: int, cast: float = 0.0):
        rng = np.random.default_rng(seed)
        photos = heldout.photographs(heldout.SPLITS[split])
        scenes = [heldout.scene(number, rng, photos, cast=cast) for number in range(count)]
        api = APIClient()
        api.force_authenticate(owner)
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(
                reverse("api:images"), {"files": [upload_file(s.jpeg, s.name) for s in scenes]}, format="multipart"
            )
        assert response.status_code == 201
        ids = {item["image"]["original_name"]: item["image"]["id"] for item in response.json()}
        return api, scenes, ids

    return _upload


@pytest.fixture
def upload(django_capture_on_commit_callbacks):
    """upload(user, data, name) -> UploadOutcome, with the processing task run as the commit would."""
    from gallery.services import image_create

    def _upload(user, data: bytes | None = None, name: str = "photo.png"):
        with django_capture_on_commit_callbacks(execute=True):
            return image_create(owner=user, upload=upload_file(images.png() if data is None else data, name))

    return _upload


@pytest.fixture
def colour_proposer(settings):
    """Use the weight-free proposer: exact boxes for tests.images.scene, and milliseconds per image."""
    from search.vision.registry import reset_models

    settings.REGION_PROPOSER = "colour"
    reset_models()
    yield
    reset_models()


@pytest.fixture
def demo_profile(settings):
    """The demo model profile (our trained CLIP, the colour proposer, its thresholds), as
    IMGSEARCH_MODEL_PROFILE=demo sets it."""
    from search.vision.registry import reset_models

    for name, value in settings.MODEL_PROFILES["demo"].items():
        setattr(settings, name, value)
    reset_models()
    reset_index()
    yield
    reset_models()
    reset_index()


# Figures measured by tests (retrieval recall, IoU) are printed at the end of every run.
MEASURED: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("measured figures")
        for line in MEASURED:
            terminalreporter.write_line(line)
