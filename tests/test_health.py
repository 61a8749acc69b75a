"""/healthz and /readyz for orchestrators, and the staff banner when no worker is alive."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from gallery.models import WorkerBeat
from gallery.work_queue import this_process, worker_beat
from tests import images
from tests.conftest import terminate_database_connection


def test_healthz_answers_without_login_or_database(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_503_until_a_worker_is_alive_then_200(client, db):
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    assert "run_worker" in body["checks"]["worker"]["error"]
    worker_beat()
    ready = client.get(reverse("readyz"))
    assert ready.status_code == 200, ready.json()
    assert ready.json()["checks"]["worker"]["alive"] == 1
    assert ready.json()["checks"]["index"]["changes_not_applied"] == 0


def test_a_worker_silent_for_three_sweeps_is_not_alive(client, db, settings):
    WorkerBeat.objects.create(
        name="elsewhere:1", seen_at=timezone.now() - timedelta(seconds=3 * settings.RECOVERY_SWEEP_SECONDS + 1)
    )
    assert client.get(reverse("readyz")).json()["checks"]["worker"]["alive"] == 0
    worker_beat()
    worker_beat(stopping=True)  # a worker that stops says so
    assert not WorkerBeat.objects.filter(name=this_process()).exists()


@pytest.mark.django_db(transaction=True)
def test_readyz_reports_a_lost_database_as_503_json(client):
    client.get(reverse("readyz"))  # opens the connection
    terminate_database_connection()
    response = client.get(reverse("readyz"))
    assert response.status_code == 503 and response.json()["checks"]["database"]["ok"] is False


def test_staff_see_a_banner_when_no_worker_is_alive_and_members_do_not(client, owner):
    staff = get_user_model().objects.create_user("keeper", password="keeper-pass-123", is_staff=True)
    client.force_login(owner)
    assert "No background worker is running" not in client.get(reverse("gallery:my_images")).content.decode()
    client.force_login(staff)
    assert "No background worker is running" in client.get(reverse("gallery:my_images")).content.decode()
    worker_beat()
    assert "No background worker is running" not in client.get(reverse("gallery:my_images")).content.decode()


def test_missing_weights_make_readyz_503_without_server_paths_and_staff_see_the_fix(client, owner, settings, tmp_path):
    worker_beat()
    assert client.get(reverse("readyz")).json()["checks"]["models"] == {"ok": True}
    settings.SAM_MODEL_TYPE = "vit_b"
    settings.SAM_CHECKPOINT = str(tmp_path / "sam_vit_b_01ec64.pth")
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    models = response.json()["checks"]["models"]
    assert models["ok"] is False and models["missing"] == ["sam"] and str(tmp_path) not in response.content.decode()

    staff = get_user_model().objects.create_user("keeper", password="keeper-pass-123", is_staff=True)
    client.force_login(owner)
    assert "Model weights are missing" not in client.get(reverse("gallery:my_images")).content.decode()
    client.force_login(staff)
    page = client.get(reverse("gallery:my_images")).content.decode()
    assert "Model weights are missing" in page and "fetch_models" in page and str(tmp_path) in page


@pytest.mark.django_db(transaction=True)
def test_a_database_that_goes_away_midway_is_a_failed_check_not_a_server_error(client):
    from imgsearch.health import _checked, _index, _worker

    for check in (_worker, _index):
        client.get(reverse("readyz"))  # the connection is open and the database check passes...
        terminate_database_connection()  # ...then the database goes away before this check
        answer = _checked(check, staff=False)
        assert answer == {"ok": False, "error": "The database went away while this was checked."}


def test_readyz_says_when_the_index_stops_keeping_up(client, owner, upload, settings, colour_proposer):
    from gallery.models import ImageChange
    from search.index import get_writer, reset_index

    worker_beat()
    upload(owner)
    settings.INDEX_INLINE_WRITER = False  # as in production: only run_indexer writes
    reset_index()
    get_writer().update()
    index = client.get(reverse("readyz")).json()["checks"]["index"]
    assert index["ok"] and index["vectors"] > 0 and index["changes_not_applied"] == 0
    upload(owner, images.png(seed=5), name="5.png")  # its changes wait: no indexer runs
    fresh = client.get(reverse("readyz")).json()["checks"]["index"]
    assert fresh["ok"] and fresh["changes_not_applied"] > 0  # a change may wait a moment
    ImageChange.objects.update(created_at=timezone.now() - timedelta(seconds=settings.INDEX_LAG_SECONDS + 5))
    response = client.get(reverse("readyz"))
    index = response.json()["checks"]["index"]
    assert response.status_code == 503 and index["ok"] is False and "run_indexer" in index["error"]


def test_readyz_tells_only_staff_the_raw_error(client, db, monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")  # nothing listens there
    broker = client.get(reverse("readyz")).json()["checks"]["broker"]
    assert broker == {"ok": False, "error": "The task broker is unreachable."}
    staff = get_user_model().objects.create_user("keeper", password="keeper-pass-123", is_staff=True)
    client.force_login(staff)
    broker = client.get(reverse("readyz")).json()["checks"]["broker"]
    assert broker["ok"] is False and "127.0.0.1" in broker["detail"]


def test_readyz_says_the_search_model_is_loading_while_a_web_process_loads_it(client, db):
    """Web processes load CLIP on a thread of their own (gunicorn_conf.post_worker_init), answering
    requests meanwhile: /readyz says so until the model is in place."""
    from search.vision import registry

    registry.reset_models()
    worker_beat()
    with registry._lock:  # the load waits here, as a minute-long load of the default model would
        loader = registry.preload_clip()
        loading = client.get(reverse("readyz"))
        assert client.get(reverse("healthz")).status_code == 200
    assert loading.status_code == 503
    assert (
        loading.json()["checks"]["models"]["loading"] is True
        and "loading" in loading.json()["checks"]["models"]["error"]
    )
    loader.join(timeout=60)
    ready = client.get(reverse("readyz"))
    assert ready.status_code == 200, ready.json()
