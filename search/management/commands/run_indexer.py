"""The index writer: applies the change feed to the search index, forever.

`make run` starts one beside the web server and the worker. Run one per machine that serves
searches (it writes INDEX_DIR on that machine); a second one on the same machine waits on the
writer lock and takes over if the first dies.
"""

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from search.index import get_writer

logger = logging.getLogger("search.index.writer")


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
            except Exception:
                # A database restart or a full disk: say so, and try again next round.
                logger.exception("Index update failed; retrying.")
                close_old_connections()
            if once:
                break
            time.sleep(max(0.0, settings.INDEX_POLL_SECONDS - (time.monotonic() - started)))
