import logging
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gallery.models import Image
from gallery.services import image_create, image_set_visibility
from gallery.work_queue import workers_alive

# How often --wait looks at the database.
WAIT_POLL_SECONDS = 1.0
# A worker that is starting has not said it is alive yet: only after this long is its absence news.
NO_WORKER_GRACE_SECONDS = 5.0


class Command(BaseCommand):
    help = (
        "Upload every file in a folder (recursively) for a user, as the web form would; with --wait, "
        "follow the processing until every new image is ready or failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="The folder to upload (sub-folders too; hidden files are skipped).")
        parser.add_argument("--user", required=True, help="Username that will own the images.")
        parser.add_argument("--public", action="store_true", help="Make the new images public.")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="After queuing, show one progress bar over processing and wait until it is done.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="With --wait: give up waiting after this long (processing goes on in the background).",
        )

    def handle(self, *args, path: Path, user: str, public: bool, wait: bool, timeout: float | None, **options):
        try:
            owner = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {user!r}; create it first (manage.py createsuperuser).") from None
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder.")
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        rejected, queued = [], []
        # django-q logs a line per task it enqueues: noise next to a bar that counts the same files.
        # Other log lines (a warning, say) print above the bar instead of breaking it up.
        logging.getLogger("django-q").setLevel(logging.WARNING)
        with logging_redirect_tqdm(loggers=[logging.getLogger(), logging.getLogger("django-q")]):
            for file_path in tqdm(files, desc="Queuing", unit="file", disable=None):
                with file_path.open("rb") as handle:
                    outcome = image_create(owner=owner, upload=File(handle, name=file_path.name))
                counts[outcome.outcome] += 1
                if outcome.outcome == "rejected":
                    rejected.append(f"{file_path}: {outcome.message}")
                elif outcome.outcome == "accepted":
                    queued.append(outcome.image.pk)
                    if public:
                        image_set_visibility(image=outcome.image, is_public=True)
        for line in rejected:
            self.stderr.write(f"rejected {line}")
        self.stdout.write(
            f"{counts['accepted']} queued, {counts['duplicate']} duplicates skipped, {counts['rejected']} rejected."
        )
        if wait and queued:
            self._wait(queued, timeout)

    def _wait(self, ids: list[int], timeout: float | None) -> None:
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        warned = False
        with (
            logging_redirect_tqdm(loggers=[logging.getLogger(), logging.getLogger("django-q")]),
            tqdm(total=len(ids), desc="Processing", unit="image", disable=None) as bar,
        ):
            while True:
                finished = Image.objects.filter(
                    pk__in=ids, status__in=[Image.Status.READY, Image.Status.FAILED]
                ).count()
                bar.update(finished - bar.n)
                if finished == len(ids):
                    break
                if not warned and time.monotonic() - started > NO_WORKER_GRACE_SECONDS and not workers_alive():
                    tqdm.write(
                        "No worker is running, so nothing is being processed: start one with "
                        "`manage.py run_worker` (or `make run`) and this goes on.",
                        file=self.stderr._out,
                    )
                    warned = True
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError(
                        f"{len(ids) - finished} image(s) still waiting after {timeout:g} s; "
                        "they go on being processed in the background."
                    )
                time.sleep(WAIT_POLL_SECONDS)
        failed = list(
            Image.objects.filter(pk__in=ids, status=Image.Status.FAILED).values_list("original_name", "error")
        )
        for name, error in failed:
            self.stderr.write(f"failed {name}: {error}")
        self.stdout.write(f"{len(ids) - len(failed)} ready, {len(failed)} failed.")
        if failed:
            raise CommandError(
                f"{len(failed)} image(s) failed; the reasons are above. Retry them with "
                "`manage.py reprocess --failed` once fixed."
            )
