"""The index writer: applies the change feed to the search index, forever.

`make run` starts one beside the web server and the worker. Run one per machine that serves
searches (it writes INDEX_DIR on that machine); a second one on the same machine waits on the
writer lock and takes over if the first dies.
"""

import errno
import logging
import signal
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections

from search.index import get_writer

logger = logging.getLogger("search.index.writer")

# While updates keep failing the same way, the log repeats what to do this often, not every round.
REPEAT_SECONDS = 60.0


def what_to_do(error: Exception, directory: Path) -> str | None:
    """A sentence for a failure a person fixes outside the app, or None for one to report in full."""
    waiting = "searches keep serving the last index meanwhile, and it catches up by itself once"
    if isinstance(error, OSError) and error.errno in {errno.ENOSPC, errno.EDQUOT}:
        return (
            f"INDEX_DIR {directory} is full ({error.strerror}): free space there, or move INDEX_DIR to a "
            f"larger disk (`manage.py rebuild_index` fills a new one); {waiting} it can write."
        )
    if isinstance(error, OSError) and error.errno in {errno.EROFS, errno.EACCES, errno.EPERM}:
        return (
            f"INDEX_DIR {directory} cannot be written ({error.strerror}): make it writable for the user "
            f"running run_indexer; {waiting} it can write."
        )
    if isinstance(error, DatabaseError):
        return f"The database is unreachable ({str(error).strip()}); {waiting} it is back."
    return None


class Trouble:
    """Says when updates start failing (with what to do), again every REPEAT_SECONDS while they go
    on failing the same way, and when they work again: a full disk was a traceback every 0.5 s."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.since: float | None = None
        self.said: tuple[str, float] | None = None

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        self.since = self.since or now
        sentence = what_to_do(error, self.directory)
        if sentence is None:
            logger.exception("Index update failed; retrying.")
            return
        if self.said is None or self.said[0] != sentence or now - self.said[1] >= REPEAT_SECONDS:
            logger.error("Index update failed for %.0f s: %s", now - self.since, sentence)
            self.said = (sentence, now)

    def worked(self) -> None:
        if self.since is not None:
            logger.warning(
                "Index updates work again after %.0f s; the index has caught up.", time.monotonic() - self.since
            )
        self.since = self.said = None


class Command(BaseCommand):
    help = "Keep the search index up to date with the database (the one writer of INDEX_DIR)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="apply the change feed once and exit")

    def handle(self, *args, once: bool = False, **options):
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        writer = get_writer()
        trouble = Trouble(Path(writer.directory))
        logger.info(
            "Indexer for %s writing %s every %.1f s.", writer.model_name, writer.directory, settings.INDEX_POLL_SECONDS
        )
        while not stopping:
            started = time.monotonic()
            try:
                result = writer.update()
                if result.rebuilt or result.images:
                    logger.info(
                        "Generation %d: %d images changed, %d vectors added, %d removed%s.",
                        result.generation,
                        result.images,
                        result.added,
                        result.removed,
                        " (rebuilt)" if result.rebuilt else "",
                    )
                trouble.worked()
            except Exception as error:
                # A database restart or a full disk: say so, and try again next round.
                trouble.failed(error)
                close_old_connections()
            if once:
                break
            time.sleep(max(0.0, settings.INDEX_POLL_SECONDS - (time.monotonic() - started)))
