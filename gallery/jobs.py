"""Where processing stands: how many photos wait, are being processed, are done or failed; how fast
they go and about how long the rest takes; what failed and why; whether it is paused.

The staff jobs page, `manage.py jobs` and a person's own "My images" read the same summary, over all
photos or over one person's.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from gallery.models import Image, ProcessingPause

# The rate is what finished within this window: recent enough to follow a change of pace.
RATE_WINDOW = timedelta(minutes=15)
FAILURES_LISTED = 10


@dataclass(frozen=True)
class Jobs:
    counts: dict[str, int]  # every status, with 0 for none
    finished_recently: int  # ready or failed within RATE_WINDOW
    per_minute: float
    eta_seconds: float | None  # None: nothing left, or no rate to go by yet
    failures: list[tuple[str, int]]  # (the sentence a person sees, how many photos), most first
    paused: ProcessingPause | None

    @property
    def left(self) -> int:
        return self.counts[Image.Status.PENDING] + self.counts[Image.Status.PROCESSING]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

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


def jobs_summary(images: QuerySet[Image] | None = None) -> Jobs:
    """The summary over `images` (every photo, those in the trash aside, by default)."""
    images = Image.objects.all() if images is None else images
    counts = dict.fromkeys(Image.Status.values, 0)
    for row in images.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    since = timezone.now() - RATE_WINDOW
    finished = images.filter(status__in=[Image.Status.READY, Image.Status.FAILED], processed_at__gte=since).count()
    per_minute = finished / (RATE_WINDOW.total_seconds() / 60)
    left = counts[Image.Status.PENDING] + counts[Image.Status.PROCESSING]
    eta = left / per_minute * 60 if left and per_minute > 0 else None
    failures = Counter(images.filter(status=Image.Status.FAILED).values_list("error", flat=True))
    return Jobs(
        counts=counts,
        finished_recently=finished,
        per_minute=per_minute,
        eta_seconds=eta,
        failures=[(sentence or "(no reason recorded)", n) for sentence, n in failures.most_common(FAILURES_LISTED)],
        paused=ProcessingPause.objects.first(),
    )
