"""Where processing stands, per stage: how many photos are searchable and how many have their
objects, how many wait or are being worked on, how fast each stage goes and about how long the rest
takes; what failed and why; whether it is paused.

The staff jobs page, `manage.py jobs` and a person's own "My images" read the same summary, over all
photos or over one person's.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from gallery.models import Image, ProcessingPause

# The rate is what finished within this window: recent enough to follow a change of pace.
RATE_WINDOW = timedelta(minutes=15)
FAILURES_LISTED = 10
# A photo failed in either stage (one whose objects failed is still searchable).
FAILED_IN_EITHER_STAGE = Q(status=Image.Status.FAILED) | Q(
    status=Image.Status.READY, objects_status=Image.ObjectsStatus.FAILED
)


@dataclass(frozen=True)
class StageJobs:
    """One stage over a set of photos: those still to do (waiting or being worked on), done, failed."""

    waiting: int  # queued for this stage, or not yet through the one before
    running: int
    done: int
    failed: int
    finished_recently: int  # done or failed within RATE_WINDOW
    per_minute: float
    eta_seconds: float | None  # None: nothing left, or no rate to go by yet

    @property
    def left(self) -> int:
        return self.waiting + self.running

    def eta_words(self) -> str:
        if not self.left:
            return "nothing left to do"
        if self.eta_seconds is None:
            return "time left not known yet"
        minutes = self.eta_seconds / 60
        if minutes < 1.5:
            return "about a minute left"
        if minutes < 90:
            return f"about {minutes:.0f} minutes left"
        return f"about {minutes / 60:.1f} hours left"


@dataclass(frozen=True)
class Jobs:
    counts: dict[str, int]  # photos in each first-stage status, with 0 for none
    searchable: StageJobs  # the first stage: decode, previews, the whole-image vector
    objects: StageJobs  # the second: SAM's objects
    failures: list[tuple[str, int]]  # (the sentence a person sees, how many photos), most first
    paused: ProcessingPause | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def left(self) -> int:
        """Photos not through both stages yet."""
        return self.objects.left

    def eta_words(self) -> str:
        """Time left until every photo is searchable, or, once they are, has its objects."""
        return (self.searchable if self.searchable.left else self.objects).eta_words()

    def progress_words(self) -> str:
        """'12,400 of 20,000 searchable (about 20 minutes left), 3,100 with objects (about 2.0
        hours left)': what a big import has done and has still to do."""
        words = f"{self.searchable.done:,} of {self.total:,} searchable"
        if self.searchable.left:
            words += f" ({self.searchable.eta_words()})"
        words += f", {self.objects.done:,} with objects"
        if self.objects.left:
            words += f" ({self.objects.eta_words()})"
        return words


def _stage(*, waiting: int, running: int, done: int, failed: int, finished: int) -> StageJobs:
    per_minute = finished / (RATE_WINDOW.total_seconds() / 60)
    left = waiting + running
    return StageJobs(
        waiting=waiting,
        running=running,
        done=done,
        failed=failed,
        finished_recently=finished,
        per_minute=per_minute,
        eta_seconds=left / per_minute * 60 if left and per_minute > 0 else None,
    )


def jobs_summary(images: QuerySet[Image] | None = None) -> Jobs:
    """The summary over `images` (every photo, those in the trash aside, by default)."""
    images = Image.objects.all() if images is None else images
    by_stage: Counter[tuple[str, str]] = Counter()
    for row in images.order_by().values("status", "objects_status").annotate(n=Count("id")):
        by_stage[(row["status"], row["objects_status"])] = row["n"]
    counts = dict.fromkeys(Image.Status.values, 0)
    for (status, _), n in by_stage.items():
        counts[status] += n
    ready = {objects: n for (status, objects), n in by_stage.items() if status == Image.Status.READY}
    Objects = Image.ObjectsStatus
    since = timezone.now() - RATE_WINDOW
    searchable = _stage(
        waiting=counts[Image.Status.PENDING],
        running=counts[Image.Status.PROCESSING],
        done=counts[Image.Status.READY],
        failed=counts[Image.Status.FAILED],
        finished=images.filter(status__in=[Image.Status.READY, Image.Status.FAILED], processed_at__gte=since).count(),
    )
    objects = _stage(
        waiting=ready.get(Objects.WAITING, 0) + searchable.left,
        running=ready.get(Objects.FINDING, 0),
        done=ready.get(Objects.FOUND, 0),
        failed=ready.get(Objects.FAILED, 0),
        finished=images.filter(
            status=Image.Status.READY, objects_status__in=[Objects.FOUND, Objects.FAILED], objects_at__gte=since
        ).count(),
    )
    failures = Counter(images.filter(FAILED_IN_EITHER_STAGE).values_list("error", flat=True))
    return Jobs(
        counts=counts,
        searchable=searchable,
        objects=objects,
        failures=[(sentence or "(no reason recorded)", n) for sentence, n in failures.most_common(FAILURES_LISTED)],
        paused=ProcessingPause.objects.first(),
    )


def recent_failures(limit: int = 20) -> QuerySet[Image]:
    """The photos that failed last, in either stage, newest first."""
    return (
        Image.objects.filter(FAILED_IN_EITHER_STAGE)
        .select_related("owner")
        .order_by(Coalesce("objects_at", "processed_at").desc(nulls_last=True))[:limit]
    )
