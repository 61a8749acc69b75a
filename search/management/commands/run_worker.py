"""The background worker: a django-q2 cluster, plus recovery of work that crashes left behind."""

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from gallery.services import files_delete_again, orphan_files_delete, partial_files_delete, trash_purge
from gallery.work_queue import BrokerWatch, images_recover, worker_beat
from search.duplicates import hashes_backfill, pixel_checks_backfill
from search.ingest import images_requeue_waiting_for_models
from search.vision.registry import weights_missing

logger = logging.getLogger(__name__)

# A `.part` file older than this belongs to an upload or thumbnail whose process died.
PARTIAL_FILE_AGE = timedelta(minutes=10)
# A stored file no photo owns, older than this, was left by a process killed mid-upload (an object
# put before its COMMIT) or made for a photo deleted meanwhile. The media are listed at start, then
# daily: a listing reads every name in the store.
ORPHAN_FILE_AGE = timedelta(hours=1)
ORPHAN_SWEEP_SECONDS = 24 * 3600
# On SIGTERM / Ctrl-C, running tasks get this long to finish; then they are stopped, and their images
# are queued again when a worker next starts (as after a kill). django-q2 alone waits for every
# task its workers hold, prefetched ones too: a busy worker took ~50 s to stop.
STOP_GRACE_SECONDS = 5.0
# A sweep reads new and changed library files for at most this long; the next sweep goes on.
LIBRARY_SCAN_SECONDS = 30.0


def _running(pid: int) -> bool:
    """Whether `pid` is alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (the cluster's sentinel, and its pusher, monitor and workers), from
    /proc; where there is none (not Linux), the direct children multiprocessing knows of."""
    proc = Path("/proc")
    if not proc.is_dir():
        return [child.pid for child in multiprocessing.active_children()]
    children: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


class Command(BaseCommand):
    help = (
        "Run the background worker (django-q2's qcluster) and, every RECOVERY_SWEEP_SECONDS, queue again "
        "the images a killed worker, a lost enqueue or a database outage left unfinished."
    )

    def add_arguments(self, parser):
        parser.add_argument("--recover-only", action="store_true", help="Run one recovery sweep and exit (no worker).")

    def handle(self, *args, recover_only: bool, **options):
        if any(connections[alias].settings_dict["OPTIONS"].get("pool") for alias in connections):
            raise CommandError(
                "DB_POOL is on, but the worker must not pool connections: django-q2 forks its "
                "processes, and a forked child would share the pooled sockets. Unset DB_POOL here."
            )
        for problem in weights_missing().values():
            logger.warning(
                "Model weights missing (uploads wait, and are processed by themselves once they are in place): %s",
                problem,
            )
        self.broker = BrokerWatch()
        self.library_watch = None
        self.orphans_swept_at: float | None = None
        self._recover(starting=True, beat=not recover_only)
        if recover_only:
            return
        from django_q.cluster import Cluster

        # The cluster forks its processes from here: they must not share this process's connections.
        connections.close_all()
        cluster = Cluster()
        stopping = self._stop_on_signals()
        cluster.start()
        # After the fork: the watch is a thread of this process (the cluster's are forked from it).
        if settings.LIBRARY_WATCH:
            from gallery.libraries import LibraryWatch

            self.library_watch = LibraryWatch()
        next_sweep = time.monotonic() + settings.RECOVERY_SWEEP_SECONDS
        while cluster.sentinel.is_alive():
            cluster.sentinel.join(timeout=0.5)
            if stopping.is_set():
                self._stop(cluster)
                break
            if time.monotonic() >= next_sweep and cluster.sentinel.is_alive():
                self._recover()
                next_sweep = time.monotonic() + settings.RECOVERY_SWEEP_SECONDS
        if self.library_watch is not None:
            self.library_watch.stop()
        with contextlib.suppress(DatabaseError):
            worker_beat(stopping=True)  # /readyz stops counting this worker at once

    @staticmethod
    def _stop_on_signals() -> threading.Event:
        """SIGTERM / SIGINT stop the cluster from the loop, not from inside the signal handler.

        django-q2's own handler sets an inter-process Event that the sentinel waits on; when the same
        SIGTERM went to the whole process group (systemd's default, `kill -TERM -PGID`), the sentinel
        has died waiting and that set() blocks forever.
        """
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        return stopping

    @staticmethod
    def _stop(cluster) -> None:
        time.sleep(0.2)  # a group-wide signal takes the sentinel down by itself
        if cluster.sentinel.is_alive():
            threading.Thread(target=cluster.stop, daemon=True).start()
        cluster.sentinel.join(timeout=STOP_GRACE_SECONDS)
        leftover = _descendants(os.getpid())
        if leftover:
            logger.warning(
                "Tasks still running after %.0f s: stopping them; their images are queued again when a worker "
                "next starts.",
                STOP_GRACE_SECONDS,
            )
            for pid in leftover:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 2
            while any(_running(pid) for pid in leftover) and time.monotonic() < deadline:
                time.sleep(0.05)
            multiprocessing.active_children()  # reaps the sentinel; its children go to whoever adopts them

    def _rescan_libraries(self) -> list:
        """Rescan the libraries whose interval has passed, or whose folder the watch saw change; a
        missing folder is said, not fatal."""
        from gallery.libraries import libraries_due, library_scan

        if self.library_watch is not None:
            self.library_watch.follow()  # the libraries registered since the last sweep too
        scanned = []
        for library in libraries_due():
            try:
                scanned.append((library, library_scan(library, seconds=LIBRARY_SCAN_SECONDS)))
            except FileNotFoundError as error:
                logger.warning("Library %s not rescanned: %s", library.pk, error)
        return scanned

    def _sweep_orphans(self) -> int:
        """orphan_files_delete at start, then once every ORPHAN_SWEEP_SECONDS."""
        if self.orphans_swept_at is not None and time.monotonic() - self.orphans_swept_at < ORPHAN_SWEEP_SECONDS:
            return 0
        deleted = orphan_files_delete(older_than=ORPHAN_FILE_AGE)
        self.orphans_swept_at = time.monotonic()
        return deleted

    def _recover(self, *, starting: bool = False, beat: bool = True) -> None:
        restarted = self.broker.restarted()
        if restarted:
            logger.warning("The task broker restarted and forgot its queued tasks: queuing their images again now.")
        parts = partial_files_delete(older_than=PARTIAL_FILE_AGE)
        if parts:
            logger.warning("Deleted %d partial file(s) left by interrupted writes.", parts)
        try:
            if beat:
                worker_beat()
            result = images_recover(starting=starting or restarted)
            removed = files_delete_again()
            purged = trash_purge(older_than=timedelta(days=settings.TRASH_DAYS))
            orphans = self._sweep_orphans()
            scanned = [] if starting else self._rescan_libraries()  # decoders start threads: not before the fork
            waited = images_requeue_waiting_for_models()
            hashed = hashes_backfill()
            # Not before the cluster forks its workers: OpenCV's threads must start in this process only.
            checked = 0 if starting else pixel_checks_backfill(seconds=2.0)
        except DatabaseError as error:  # the database is away; the next sweep tries again
            logger.warning("Recovery sweep skipped: %s", error)
            connections.close_all()
            return
        if result.requeued or result.failed:
            self.stdout.write(f"Recovery: queued {len(result.requeued)} image(s) again, failed {len(result.failed)}.")
        for count, said in (
            (hashed, "Near-duplicates: hashed {} photo(s) processed before hashes were kept."),
            (checked, "Near-duplicates: pixel-checked {} photo(s) against their likely copies."),
            (len(waited), "Model weights found: queued {} image(s) that waited for them."),
            (removed, "Removed {} file(s) of deleted photos that could not be removed before."),
            (orphans, "Removed {} stored file(s) that no photo owns (left by interrupted uploads)."),
        ):
            if count:
                self.stdout.write(said.format(count))
        for library, scan in scanned:
            self.stdout.write(f"Library {library.pk} rescanned: {scan}.")
        if purged:
            self.stdout.write(
                f"Trash: deleted {purged} photo(s) for good, {settings.TRASH_DAYS} days after they were deleted."
            )
