"""Images through the real queue: `manage.py run_worker` processes, 1 and 2 workers, and recovery.

    .venv/bin/python bench/queue_bench.py --models full-random --images 12 --workers 1 2
    .venv/bin/python bench/queue_bench.py --models full-random --images 8 --recovery

Throughput: N generated 1024x768 scenes are uploaded (tasks go to the broker), then one
`run_worker` with Q_WORKERS=k (TORCH_THREADS = cores / k) processes them. Reported: wall time from
start to the last image ready, images/min in steady state (from the first image ready to the last,
so model loading is left out), and the peak memory of each worker process.

Recovery (--recovery): one worker; while an image is being processed the whole cluster is killed
(kill -9 of its process group) and started again at once, as systemd's Restart=always would. Reported:
seconds from the kill until a worker claims an image again (the queue resumes), until the next
image is ready, until the interrupted image is ready (it is queued again after
PROCESSING_STALE_SECONDS, behind what was queued before it), and whether any image was processed twice. Default recovery settings.

Runs against a throwaway PostgreSQL database (imgsearch_bench, dropped first) and media folder.
"""

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline_seconds import PROFILES, scene  # noqa: E402

DATABASE = "imgsearch_bench"


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids


class Run:
    def __init__(self, env: dict, workers: int, log: Path):
        cores = os.cpu_count() or 1
        self.env = {**env, "Q_WORKERS": str(workers), "TORCH_THREADS": str(max(1, cores // workers))}
        self.log = log
        self.process = None
        self.peak: dict[int, float] = {}

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "run_worker"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def sample(self) -> None:
        for pid in group_pids(self.process.pid):
            self.peak[pid] = max(self.peak.get(pid, 0.0), rss_mb(pid))

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", choices=sorted(PROFILES), default="tiny")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--recovery", action="store_true")
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="imgsearch-queue-bench-"))
    env = {
        **os.environ,
        **PROFILES[args.models],
        "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "MEDIA_ROOT": str(work / "media"),
        "INDEX_DIR": str(work / "index"),
        "LOG_LEVEL": "WARNING",
    }
    if args.broker == "redis":
        env["REDIS_URL"] = "redis://127.0.0.1:6379/14"
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
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Sum
    from django_q.brokers import get_broker

    from gallery.models import Image
    from gallery.services import image_create

    call_command("migrate", verbosity=0)
    get_broker().delete_queue()
    print(f"models={args.models} images={args.images} broker={args.broker} cores={os.cpu_count()}")

    def upload_batch(tag: str) -> list[int]:
        user = get_user_model().objects.create_user(f"bench-{tag}")  # the same scenes are new to each user
        ids = []
        for seed in range(args.images):
            buffer = io.BytesIO()
            scene(1024, 768, seed).save(buffer, "JPEG", quality=90)
            outcome = image_create(owner=user, upload=ContentFile(buffer.getvalue(), name=f"{tag}-{seed}.jpg"))
            ids.append(outcome.image.pk)
        return ids

    def status_of(ids):
        connection.close()
        return dict(Image.objects.filter(pk__in=ids).values_list("pk", "status"))

    if not args.recovery:
        for workers in args.workers:
            ids = upload_batch(f"w{workers}")
            run = Run(env, workers, work / f"worker-{workers}.log")
            started = time.monotonic()
            run.start()
            first_ready = None
            while True:
                run.sample()
                statuses = status_of(ids)
                ready = sum(status == "ready" for status in statuses.values())
                if ready and first_ready is None:
                    first_ready = (time.monotonic(), ready)
                if all(status in {"ready", "failed"} for status in statuses.values()):
                    break
                time.sleep(0.5)
            finished = time.monotonic()
            run.stop()
            failed = sum(status == "failed" for status in statuses.values())
            steady = (len(ids) - first_ready[1]) / (finished - first_ready[0]) * 60 if finished > first_ready[0] else 0
            heavy = sorted(run.peak.values(), reverse=True)[:workers]
            claims = Image.objects.filter(pk__in=ids).aggregate(total=Sum("attempts"))["total"]
            print(
                f"workers={workers} TORCH_THREADS={run.env['TORCH_THREADS']}: all {len(ids)} done in "
                f"{finished - started:.1f} s (failed {failed}); steady state {steady:.1f} images/min; "
                f"peak memory per worker {', '.join(f'{mb:.0f} MB' for mb in heavy)}; "
                f"claims {claims} for {len(ids)} images (more = double work)"
            )
        return

    ids = upload_batch("recovery")
    run = Run(env, 1, work / "worker-recovery.log")
    run.start()
    while True:
        processing = Image.objects.filter(pk__in=ids, status="processing").values_list("pk", flat=True).first()
        ready = Image.objects.filter(pk__in=ids, status="ready").count()
        if processing and ready >= 1:
            break
        time.sleep(0.1)
        connection.close()
    run.kill()
    killed_at = time.monotonic()
    run.start()
    resumed = next_ready = interrupted_ready = None
    while True:
        connection.close()
        rows = dict(Image.objects.filter(pk__in=ids).values_list("pk", "status"))
        claimed = Image.objects.filter(pk__in=ids, status="processing").exclude(pk=processing).exists()
        now_ready = sum(s == "ready" for s in rows.values())
        if resumed is None and (claimed or now_ready > ready):
            resumed = time.monotonic() - killed_at
        if next_ready is None and now_ready > ready:
            next_ready = time.monotonic() - killed_at
        if interrupted_ready is None and rows[processing] == "ready":
            interrupted_ready = time.monotonic() - killed_at
        if all(status in {"ready", "failed"} for status in rows.values()):
            break
        time.sleep(0.2)
    done = time.monotonic() - killed_at
    run.stop()
    attempts = Image.objects.filter(pk__in=ids).aggregate(total=Sum("attempts"))["total"]
    print(f"killed while image {processing} was processing ({ready} ready before); restarted at once")
    print(
        f"queue resumed (an image claimed) after {resumed:.1f} s, next image ready after {next_ready:.1f} s; "
        f"interrupted image ready after {interrupted_ready:.1f} s; "
        f"all {len(ids)} done after {done:.1f} s"
    )
    print(f"claims: {attempts} for {len(ids)} images (one extra = the interrupted image; more = double work)")


if __name__ == "__main__":
    main()
