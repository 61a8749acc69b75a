"""Health endpoints for orchestrators and monitors: JSON, no login.

/healthz: the process answers. /readyz: it can do its work: database, broker, a worker alive,
the search index published and keeping up with the change feed, the model weights in place. 200
when ready, else 503; always JSON, whatever fails while it looks. Each check says in a sentence
what is wrong; the raw error (hosts, ports, paths) only to staff.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Min
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from gallery.models import ImageChange
from gallery.work_queue import workers_alive
from search.index import CorruptIndex, IndexUnavailable, get_index
from search.vision.registry import clip_loading, weights_missing

logger = logging.getLogger(__name__)


class NotReady(Exception):
    """A check failed: `sentence` is for everyone, `detail` (the raw error) for staff."""

    def __init__(self, sentence: str, detail: object = "", **facts):
        super().__init__(sentence)
        self.sentence, self.detail, self.facts = sentence, str(detail), facts


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    staff = _staff(request)
    checks = {"database": _checked(_database, staff), "broker": _checked(_broker, staff)}
    if checks["database"]["ok"]:
        checks["worker"] = _checked(_worker, staff)
        checks["index"] = _checked(_index, staff)
    checks["models"] = _checked(_models, staff)
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


def _staff(request: HttpRequest) -> bool:
    """Whether the caller may read raw errors: a signed-in staff member. Finding out reads the session
    from the database; while that is away nobody is staff, and the answer is still JSON."""
    try:
        return bool(request.user.is_authenticated and request.user.is_staff)
    except DatabaseError:
        connection.close()
        return False


def _checked(check: Callable[[], dict], staff: bool) -> dict:
    """The check's answer; whatever it raises (the database going away midway) is a failed check."""
    try:
        return {"ok": True, **check()}
    except NotReady as not_ready:
        problem = not_ready
    except DatabaseError as error:
        connection.close()  # the next check, or request, opens a fresh connection
        problem = NotReady("The database went away while this was checked.", error)
    answer = {"ok": False, **problem.facts, "error": problem.sentence}
    if staff and problem.detail:
        answer["detail"] = problem.detail
    return answer


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        connection.close()
        raise NotReady("The database is unreachable.", error) from None
    return {}


def _broker() -> dict:
    from django_q.brokers import get_broker

    try:
        get_broker().ping()
    except Exception as error:  # any broker client error means: not ready
        raise NotReady("The task broker is unreachable.", error) from None
    return {}


def _worker() -> dict:
    alive = workers_alive()
    if not alive:
        raise NotReady("No background worker is running: uploads wait until `manage.py run_worker` starts.", alive=0)
    return {"alive": alive}


def _models() -> dict:
    if clip_loading():
        raise NotReady("The search model is still loading in this web process; searches wait for it.", loading=True)
    missing = sorted(weights_missing())
    if missing:
        # Which ones, not where the server looked: paths and commands are on the staff banner and in the log.
        raise NotReady(
            "Model weights are missing; uploads wait until `manage.py fetch_models` puts them in place.",
            missing=missing,
        )
    return {}


def _index() -> dict:
    try:
        generation = get_index().current()
    except (IndexUnavailable, CorruptIndex) as error:
        raise NotReady("The search index is not available.", error) from None
    waiting = ImageChange.objects.filter(position__gt=generation.position)
    lag = waiting.count()
    oldest = waiting.aggregate(oldest=Min("created_at"))["oldest"]
    behind = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    if behind > settings.INDEX_LAG_SECONDS:
        raise NotReady(
            f"The search index is {lag} change(s) behind the database, the oldest {behind:.0f} s old: is "
            "`manage.py run_indexer` running? Its log says why it cannot keep up (a full or read-only "
            "INDEX_DIR, for one).",
            vectors=generation.ntotal,
            changes_not_applied=lag,
        )
    return {"vectors": generation.ntotal, "changes_not_applied": lag}
