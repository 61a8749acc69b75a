"""Health endpoints for orchestrators and monitors: JSON, no login.

/healthz: the process answers. /readyz: it can do its work: database, broker, a worker alive,
the search index published (and how far it lags behind the change feed), the model weights in
place. 200 when ready, else 503.
"""

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from gallery.models import ImageChange
from gallery.work_queue import workers_alive
from search.index import CorruptIndex, IndexUnavailable, get_index
from search.vision.registry import weights_missing


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "broker": _broker()}
    if checks["database"]["ok"]:
        checks["worker"] = _worker()
        checks["index"] = _index()
    checks["models"] = _models()
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except DatabaseError as error:
        connection.close()  # the next check opens a fresh connection
        return {"ok": False, "error": f"The database is unreachable: {error}".strip()}


def _broker() -> dict:
    from django_q.brokers import get_broker

    try:
        get_broker().ping()
        return {"ok": True}
    except Exception as error:  # any broker client error means: not ready
        return {"ok": False, "error": f"The task broker is unreachable: {error}"}


def _worker() -> dict:
    alive = workers_alive()
    if alive:
        return {"ok": True, "alive": alive}
    return {
        "ok": False,
        "alive": 0,
        "error": "No background worker is running: uploads wait until `manage.py run_worker` starts.",
    }


def _models() -> dict:
    missing = sorted(weights_missing())
    if not missing:
        return {"ok": True}
    # Which ones, not where the server looked: paths and commands are on the staff banner and in the log.
    return {
        "ok": False,
        "missing": missing,
        "error": "Model weights are missing; uploads wait until `manage.py fetch_models` puts them in place.",
    }


def _index() -> dict:
    try:
        generation = get_index().current()
    except (IndexUnavailable, CorruptIndex) as error:
        return {"ok": False, "error": f"The search index is not available: {error}"}
    lag = ImageChange.objects.filter(position__gt=generation.position).count()
    return {"ok": True, "vectors": generation.ntotal, "changes_not_applied": lag}
