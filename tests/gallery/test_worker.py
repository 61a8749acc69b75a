"""Real worker processes (`manage.py run_worker`) under real faults, on the ORM and the Redis broker.

kill -9 of the worker with a queue behind it (in either stage of processing), a web process killed
between COMMIT and the enqueue, PostgreSQL restarted under a running pipeline: each ends with every
image searchable with its objects found, processed once per claim, no duplicate regions, no stray
files, and the index equal to the database.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import DatabaseError, connection
from django.db.models import Count, Q, Sum
from django_q.conf import Conf

from gallery.models import Image, Region
from gallery.services import image_create
from gallery.work_queue import OBJECTS, WHOLE, queued_image_ids, workers_alive
from search.index import get_index
from tests import images
from tests.conftest import REDIS_TEST_URL, child_env, stop_process_group, upload_file

ROOT = Path(__file__).resolve().parents[2]
# Recovery in seconds rather than tens of seconds, so a test sees several rounds of it.
FAST_RECOVERY = {"PROCESSING_HEARTBEAT_SECONDS": "0.5", "PROCESSING_STALE_SECONDS": "3", "RECOVERY_SWEEP_SECONDS": "1"}

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except DatabaseError:  # PostgreSQL restarting under the test too
            connection.close()
        time.sleep(interval)
    return False


class Worker:
    """`manage.py run_worker` in its own process group, started, killed and restarted at will."""

    def __init__(self, env: dict, log_path: Path):
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "run_worker"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """kill -9 of the whole cluster: its sentinel, pusher, monitor and workers at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def log(self, *, whole: bool = False) -> str:
        text = self.log_path.read_text()
        unfinished = list(
            Image.objects.exclude(FINAL).values_list(
                "pk", "status", "objects_status", "attempts", "queued_at", "heartbeat_at"
            )
        )
        queued = f"{queued_image_ids(WHOLE)} then objects {queued_image_ids(OBJECTS)}"
        return (text if whole else text[-6000:]) + f"\nunfinished: {unfinished}\nqueued: {queued}"


@pytest.fixture(params=["orm", "redis"])
def broker(request, monkeypatch):
    """The broker the test process enqueues to and the worker reads from; emptied before and after."""
    monkeypatch.setattr(Conf, "SYNC", False)
    env = {}
    if request.param == "redis":
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", REDIS_TEST_URL)
        env["REDIS_URL"] = REDIS_TEST_URL
    from django_q.brokers import get_broker

    queue = get_broker()
    queue.delete_queue()
    yield env
    queue.delete_queue()


@pytest.fixture
def worker(broker, settings, tmp_path):
    env = child_env(settings, **broker, **FAST_RECOVERY, Q_WORKERS="1", TORCH_THREADS="1")
    handle = Worker(env, tmp_path / "worker.log")
    yield handle
    handle.stop()


def upload(owner, seed: int) -> Image:
    return image_create(owner=owner, upload=upload_file(images.png(seed=seed), f"{seed}.png")).image


# Both stages over: nothing more happens to the image by itself.
FINAL = Q(status="failed") | Q(status="ready", objects_status__in=["found", "failed"])
# A worker holds the image, in the first stage or the second.
BUSY = Q(status="processing") | Q(status="ready", objects_status="finding")


def all_final(count: int) -> bool:
    return Image.objects.filter(FINAL).count() == count


def assert_processed_once_and_consistent(settings, *, interruptions: int) -> None:
    """Every image ready with its objects; no duplicate regions; no stray or partial files; the
    index equals the database."""
    assert set(Image.objects.values_list("status", "objects_status")) == {("ready", "found")}
    # One claim of the objects stage per image (the count starts again with it), plus at most one
    # per interruption (the images a killed worker was on).
    count = Image.objects.count()
    assert count <= Image.objects.aggregate(total=Sum("attempts"))["total"] <= count + interruptions
    assert set(
        Image.objects.annotate(globals=Count("regions", filter=models_q(kind="global"))).values_list(
            "globals", flat=True
        )
    ) == {1}
    boxes = list(Region.objects.values_list("image_id", "kind", "x1", "y1", "x2", "y2"))
    assert len(boxes) == len(set(boxes)), "an image has the same region twice"
    media = Path(settings.MEDIA_ROOT)
    stored = {path.relative_to(media).as_posix() for path in (media / "originals").rglob("*") if path.is_file()}
    assert stored == set(Image.objects.values_list("file", flat=True))
    assert set(get_index().current().ids().tolist()) == set(Region.objects.values_list("pk", flat=True))


def models_q(**lookups):
    return Q(**{f"regions__{name}": value for name, value in lookups.items()})


@pytest.mark.parametrize("batch", [1, 3])
def test_killing_the_worker_three_times_strands_nothing(owner, worker, settings, batch):
    """Killed once while it makes photos searchable and twice while it finds their objects."""
    worker.env["PROCESSING_BATCH_IMAGES"] = str(batch)
    for seed in range(30):
        upload(owner, seed)
    worker.start()
    stages = [Q(status="processing"), Q(status="ready", objects_status="finding"), BUSY]
    for kill, busy in enumerate(stages):
        found = wait_for(lambda busy=busy: Image.objects.filter(busy).exists(), timeout=60, interval=0.02)
        assert found, worker.log()
        if kill == 1:
            # Only the process working on the image (the cluster lives on and starts a new one).
            claimed_by = Image.objects.filter(busy).values_list("claimed_by", flat=True).first()
            if claimed_by:
                os.kill(int(claimed_by.rsplit(":", 1)[1]), signal.SIGKILL)
                continue
        worker.kill()
        worker.start()
    assert wait_for(lambda: all_final(30), timeout=240), worker.log()
    # A kill in the second stage interrupts at most the images the worker had claimed: one batch
    # (a first-stage kill costs attempts of that stage, which start again at the second).
    assert_processed_once_and_consistent(settings, interruptions=2 * batch)
    assert "Recovery: queued" in worker.log(whole=True)
    assert worker.process.poll() is None, "the worker died"


WEB_KILLED_AFTER_COMMIT = """
import os, signal, django
django.setup()
import django_q.tasks
# The process dies the moment the upload has committed and its task is about to reach the broker.
django_q.tasks.async_task = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from gallery.services import image_create
from tests import images
owner = get_user_model().objects.get(username="owner")
image_create(owner=owner, upload=SimpleUploadedFile("lost.png", images.png(seed=77), content_type="image/png"))
"""


def test_a_web_process_killed_between_commit_and_enqueue_loses_nothing(owner, worker, settings):
    killed = subprocess.run(
        [sys.executable, "-c", WEB_KILLED_AFTER_COMMIT],
        cwd=ROOT,
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    image = Image.objects.get()
    assert image.status == "pending" and queued_image_ids() == []  # committed, never queued
    worker.start()
    assert wait_for(lambda: all_final(1), timeout=60), worker.log()
    assert_processed_once_and_consistent(settings, interruptions=0)
    from gallery.work_queue import workers_alive

    assert workers_alive() == 1  # the running worker beats (what /readyz reports)


def test_a_postgresql_restart_under_the_pipeline_loses_nothing(private_postgresql, owner, worker, settings):
    for seed in range(8):
        upload(owner, seed)
    worker.start()
    assert wait_for(lambda: Image.objects.filter(objects_status="found").exists(), timeout=60), worker.log()
    assert wait_for(lambda: Image.objects.filter(BUSY).exists(), timeout=30, interval=0.02)
    private_postgresql.restart()
    connection.close()
    assert wait_for(lambda: all_final(8), timeout=120), worker.log()
    assert_processed_once_and_consistent(settings, interruptions=1)
    assert worker.process.poll() is None, "the worker died"


def test_ingest_folder_wait_follows_processing_by_a_real_worker_to_the_end(owner, settings, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(3):
        (folder / f"{seed}.png").write_bytes(images.png(seed=seed))
    env = child_env(settings, **FAST_RECOVERY, Q_WORKERS="1", TORCH_THREADS="1")
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    try:
        assert wait_for(workers_alive, timeout=60), worker.log()
        returncode, out, terminal = run_with_a_terminal(
            [
                sys.executable,
                "manage.py",
                "ingest_folder",
                str(folder),
                "--user",
                owner.username,
                "--wait",
                "--timeout",
                "120",
            ],
            env=env,
            timeout=180,
        )
    finally:
        worker.stop()
    assert returncode == 0, out + terminal + worker.log()
    assert "3 queued" in out and "3 ready, 0 failed." in out
    # The bars draw on the terminal: queuing, then processing to the end, each on its own line (a
    # log line per file once broke them up).
    assert "Queuing: 100%" in terminal and "Processing: 100%" in terminal and "3/3" in terminal
    assert "Enqueued" not in terminal
    assert "No worker is running" not in terminal
    assert Image.objects.filter(status="ready").count() == 3


def test_ingest_folder_wait_says_no_worker_is_running_and_gives_up_at_its_timeout(owner, settings, tmp_path):
    (tmp_path / "a.png").write_bytes(images.png(seed=1))
    env = child_env(settings)
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "ingest_folder",
            str(tmp_path),
            "--user",
            owner.username,
            "--wait",
            "--timeout",
            "8",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "No worker is running" in result.stderr
    assert "1 image(s) still waiting after 8 s" in result.stderr


def run_with_a_terminal(args: list[str], *, env: dict, timeout: float) -> tuple[int, str, str]:
    """Run a command with stderr on a pseudo-terminal, as in a person's shell (progress bars draw
    only there). Returns (exit status, stdout, what the terminal showed)."""
    import fcntl
    import pty
    import struct
    import termios

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 24 rows x 120 columns
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the command ended and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    out = process.stdout.read()
    return process.wait(timeout=30), out, shown.decode("utf-8", "replace")


def test_the_workers_sweep_finds_a_crop_pixel_for_pixel(owner, worker, settings):
    """A real run_worker: once both photos are processed and indexed, its sweep compares them and
    keeps the verdict that one is a crop of the other (search.duplicates.pixel_checks_backfill)."""
    from search.duplicates import duplicate_groups
    from search.models import PixelCheck, PixelVerdict
    from tests.search.test_duplicates import deep_crop, encode, scene

    worker.env["NEAR_DUPLICATE_CHECK_SIMILARITY"] = "-1"  # tiny random CLIP: ask about every neighbour
    original = image_create(owner=owner, upload=upload_file(encode(scene(5)), "original.png")).image
    cropped = image_create(owner=owner, upload=upload_file(encode(deep_crop(scene(5))), "crop.png")).image
    worker.start()
    assert wait_for(lambda: PixelCheck.objects.count() == 2, timeout=120), worker.log()
    verdict = PixelVerdict.objects.get()
    assert (verdict.first_id, verdict.second_id, verdict.same) == (original.pk, cropped.pk, True)
    assert [{image.pk for image in group.images} for group in duplicate_groups(owner)] == [{original.pk, cropped.pk}]
    assert "pixel-checked" in worker.log(whole=True) and worker.process.poll() is None


def running_in_group(pgid: int) -> list[str]:
    """The processes of a process group that are not zombies: "pid state command"."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            running.append(f"{stat.parent.name} {fields[0]} {command}")
    return running


def test_sigterm_stops_a_busy_worker_within_ten_seconds_and_its_work_is_done_later(owner, worker, settings):
    """django-q2 waits for every task its workers hold before it stops: a worker busy for minutes
    took minutes to stop (~50 s in the audit). Now running tasks get a few seconds, then stop."""
    from django_q.tasks import async_task

    worker.start()
    assert wait_for(workers_alive, timeout=60), worker.log()
    async_task("time.sleep", 300)  # a task that would hold the stop for five minutes
    assert wait_for(lambda: "'time.sleep'" in worker.log(whole=True), timeout=30), worker.log()
    upload(owner, 1)  # behind it in the queue
    started = time.monotonic()
    os.kill(worker.process.pid, signal.SIGTERM)
    worker.process.wait(timeout=60)
    stopped_in = time.monotonic() - started
    assert stopped_in < 10, f"stopped in {stopped_in:.1f} s\n{worker.log()}"
    # None of the cluster's processes is left running (the killed ones may linger as zombies a moment
    # until whatever adopted them reaps them: they hold nothing).
    assert wait_for(lambda: not running_in_group(worker.process.pid), timeout=5), running_in_group(worker.process.pid)
    worker.start()  # the photo it never reached is processed by the next worker
    assert wait_for(lambda: all_final(1), timeout=60), worker.log()
    assert (Image.objects.get().status, Image.objects.get().objects_status) == ("ready", "found")
