"""The index with real commits and real processes: a rebuild racing a commit, writers racing each
other while a reader loads every generation they publish, and `run_indexer` keeping searches fresh."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from django.db import connection

from gallery.models import Image, Region
from search.index import IndexReader, IndexUnavailable, IndexWriter, Visibility
from search.index import writer as indexer_module
from search.vision.identity import current_model
from tests.conftest import MEASURED, child_env, stop_process_group

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def model():
    return current_model()


def unit(seed: int, dim: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def make_image(user, name: str, *, public: bool = False) -> Image:
    return Image.objects.create(
        owner=user,
        file=f"originals/{name}",
        original_name=name,
        sha256=name.ljust(64, "0"),
        format="PNG",
        width=10,
        height=10,
        size_bytes=1,
        status="ready",
        is_public=public,
    )


def make_regions(image: Image, seeds, model) -> list[Region]:
    name, dim = model
    return Region.objects.bulk_create(
        [
            Region(
                image=image,
                kind="object",
                x1=0,
                y1=0,
                x2=10,
                y2=10,
                area_fraction=0.01,
                embedding=Region.pack_vector(unit(seed, dim)),
                embedding_model=name,
                embedding_dim=dim,
            )
            for seed in seeds
        ]
    )


def indexer_env(settings, **extra) -> dict:
    return child_env(settings, INDEX_INLINE_WRITER="false", **extra)


def start(args: list[str], settings, log_name: str, **extra) -> tuple[subprocess.Popen, object]:
    settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
    log = open(settings.MEDIA_ROOT / log_name, "w+")  # noqa: SIM115 (stop() reads and closes it)
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=indexer_env(settings, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, log


def stop(process: subprocess.Popen, log, sig=signal.SIGTERM) -> str:
    stop_process_group(process, sig)
    log.seek(0)
    text = log.read()
    log.close()
    return text


def wait_for(predicate, *, timeout: float, interval: float = 0.02) -> float | None:
    """Seconds until predicate() held, or None if it never did within timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def test_a_region_committed_while_a_rebuild_scans_is_indexed(transactional_db, owner, settings, model, monkeypatch):
    image = make_image(owner, "x.png")
    make_regions(image, range(10), model)
    monkeypatch.setattr(indexer_module, "REBUILD_BATCH", 2)
    committed: list[int] = []

    def commit_elsewhere() -> None:  # the worker, committing a new image's region meanwhile
        committed.append(make_regions(image, [99], model)[0].pk)
        connection.close()

    def progress(count: int) -> None:
        if not committed:
            thread = threading.Thread(target=commit_elsewhere)
            thread.start()
            thread.join()

    writer = IndexWriter(model_name=model[0], dim=model[1], directory=settings.INDEX_DIR)
    writer.rebuild(progress=progress)
    assert committed and committed[0] in set(writer.generation.ids().tolist())
    assert writer.generation.ntotal == 11


WRITER_LOOP = """
import django, sys, time
django.setup()
from search.index import get_writer
writer = get_writer()
for round in range(int(sys.argv[1])):
    writer.rebuild() if round % 2 == 0 else writer.update()
print("rounds done", flush=True)
"""


def test_writers_in_two_processes_never_publish_a_mixed_generation(transactional_db, owner, settings, model):
    """Every generation a reader loads holds, in every slot, the vector of the region it names."""
    name, dim = model
    image = make_image(owner, "x.png")
    regions = make_regions(image, range(300), model)
    vectors = {region.pk: region.vector for region in regions}
    writers = [start(["-c", WRITER_LOOP, "12"], settings, f"writer-{n}.log", INDEX_SHARDS=str(2 + n)) for n in range(2)]
    reader = IndexReader(model_name=name, dim=dim, directory=settings.INDEX_DIR)
    seen, checked, seed = set(), 0, 1000
    try:
        deadline = time.monotonic() + 120
        while any(process.poll() is None for process, _ in writers) and time.monotonic() < deadline:
            # Changes for the writers' update rounds: a region added, an old one deleted.
            new = make_regions(image, [seed], model)[0]
            vectors[new.pk] = new.vector
            seed += 1
            Region.objects.filter(pk=regions[seed % 300].pk).delete()
            try:
                generation = reader.current()
            except IndexUnavailable:
                continue
            seen.add(generation.id)
            for segment, alive in zip(generation.segments, generation.alive, strict=True):
                slots = np.flatnonzero(alive)
                stored = segment.vectors(slots)
                expected = np.stack([vectors[int(pk)] for pk in segment.region_ids[slots]])
                assert np.allclose(stored, expected, atol=1e-3), f"generation {generation.number} mixes vectors"
                checked += len(slots)
    finally:
        logs = [stop(process, log) for process, log in writers]
    assert all("rounds done" in text for text in logs), logs
    assert len(seen) >= 3 and checked > 0
    writer = IndexWriter(model_name=name, dim=dim, directory=settings.INDEX_DIR)
    writer.update()
    assert set(writer.generation.ids().tolist()) == set(Region.objects.values_list("pk", flat=True))


def test_run_indexer_brings_changes_to_searches_within_seconds_and_survives_a_kill(
    transactional_db, owner, stranger, settings, model
):
    name, dim = model
    image = make_image(owner, "x.png")
    region = make_regions(image, [1], model)[0]
    indexer, log = start(["manage.py", "run_indexer"], settings, "indexer.log", INDEX_POLL_SECONDS="0.2")
    reader = IndexReader(model_name=name, dim=dim, directory=settings.INDEX_DIR)

    def seen_by_stranger() -> bool:
        found = reader.search(unit(1, dim), k=5, visibility=Visibility(user_id=stranger.pk))[1][0]
        return region.pk in set(found.tolist())

    def published() -> bool:
        try:
            reader.current()
            return True
        except IndexUnavailable:
            return False

    lags = []
    try:
        assert wait_for(published, timeout=60) is not None, "the indexer published nothing"
        assert not seen_by_stranger()
        Image.objects.filter(pk=image.pk).update(is_public=True)
        lags.append(wait_for(seen_by_stranger, timeout=30))
        Image.objects.filter(pk=image.pk).update(is_public=False)
        lags.append(wait_for(lambda: not seen_by_stranger(), timeout=30))
        assert None not in lags, lags

        # A killed indexer: the next one takes over from the published generation.
        stop(indexer, log, signal.SIGKILL)
        indexer, log = start(["manage.py", "run_indexer"], settings, "indexer-2.log", INDEX_POLL_SECONDS="0.2")
        later = make_regions(image, [2], model)[0]
        lags.append(wait_for(lambda: later.pk in set(reader.current().ids().tolist()), timeout=60))
        Image.objects.filter(pk=image.pk).delete()
        lags.append(wait_for(lambda: reader.current().ntotal == 0, timeout=30))
    finally:
        text = stop(indexer, log)
    assert None not in lags, (lags, text)
    assert "rebuilt" not in text, text  # the second indexer adopted the first one's generation
    MEASURED.append(
        f"index freshness with run_indexer (poll 0.2 s): public {lags[0]:.2f} s, private {lags[1]:.2f} s, "
        f"deleted {lags[3]:.2f} s (new indexer after kill -9 and startup: {lags[2]:.2f} s)"
    )


def test_run_indexer_carries_on_after_its_database_connection_is_killed(transactional_db, owner, settings, model):
    name, dim = model
    image = make_image(owner, "x.png")
    make_regions(image, [1], model)
    indexer, log = start(["manage.py", "run_indexer"], settings, "indexer.log", INDEX_POLL_SECONDS="0.2")
    reader = IndexReader(model_name=name, dim=dim, directory=settings.INDEX_DIR)

    def holds(count: int) -> bool:
        try:
            return reader.current().ntotal == count
        except IndexUnavailable:
            return False

    try:
        assert wait_for(lambda: holds(1), timeout=60) is not None
        # What a PostgreSQL restart does to the indexer's connection.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            assert cursor.fetchone() is not None
        make_regions(image, [2], model)
        lag = wait_for(lambda: holds(2), timeout=30)
    finally:
        text = stop(indexer, log)
    assert lag is not None, text


def test_run_indexer_on_a_full_disk_says_what_to_do_once_and_catches_up_when_there_is_room(
    transactional_db, owner, settings, model, tmp_path
):
    """The index directory filled up: the indexer said nothing useful (a traceback each 0.2-0.5 s).
    Now one sentence with what to do, repeated a minute later at most, and a line when it recovers."""
    disk = tmp_path / "index-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                             text=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here ({mounted.stderr.strip()}); CI runs as root")
    settings.INDEX_DIR = disk
    name, dim = model
    image = make_image(owner, "x.png")
    make_regions(image, [1], model)
    indexer, log = start(["manage.py", "run_indexer"], settings, "indexer.log", INDEX_POLL_SECONDS="0.2")
    reader = IndexReader(model_name=name, dim=dim, directory=disk)
    filler = disk / "filler"

    def vectors() -> int:
        try:
            return reader.current().ntotal
        except IndexUnavailable:
            return 0

    try:
        assert wait_for(lambda: vectors() == 1, timeout=60) is not None
        with open(filler, "wb", buffering=0) as handle, pytest.raises(OSError):  # fill it to the last byte
            while True:
                handle.write(b"\0" * 4096)
        more = make_image(owner, "y.png")
        make_regions(more, range(2, 202), model)
        time.sleep(3)  # some fifteen rounds of the indexer on a full disk
        assert vectors() == 1  # searches still see the last generation
        filler.unlink()
        assert wait_for(lambda: vectors() == 201, timeout=30) is not None
    finally:
        text = stop(indexer, log)
        subprocess.run(["umount", "-l", str(disk)], check=False)
    full = [line for line in text.splitlines() if "Index update failed" in line]
    assert len(full) == 1 and f"INDEX_DIR {disk}" in full[0] and "is full" in full[0], text[-4000:]
    assert "Traceback" not in text and "Index updates work again" in text, text[-4000:]
