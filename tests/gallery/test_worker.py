"""A real django-q2 cluster (qcluster) takes a queued image through the ORM broker to ready."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django_q.conf import Conf

from gallery.models import Image
from gallery.services import image_create
from tests import images
from tests.conftest import upload_file

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, *, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def cluster(transactional_db, settings, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "INDEX_DIR": str(settings.INDEX_DIR),
        "Q_WORKERS": "1",
    }
    log = open(settings.MEDIA_ROOT.parent / "qcluster.log", "w+")
    process = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    yield process, log
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


@pytest.mark.slow
def test_a_real_worker_processes_queued_images_and_survives_a_bad_one(cluster, owner, settings):
    process, log = cluster
    good = image_create(owner=owner, upload=upload_file(images.png(seed=11), "good.png")).image
    bad = image_create(owner=owner, upload=upload_file(images.png(seed=12), "bad.png")).image
    (settings.MEDIA_ROOT / bad.file).write_bytes(b"corrupted after upload")
    after = image_create(owner=owner, upload=upload_file(images.png(seed=13), "after.png")).image

    def all_final() -> bool:
        return Image.objects.filter(status__in=["ready", "failed"]).count() == 3

    finished = wait_for(all_final, timeout=240)
    log.seek(0)
    assert finished, "worker did not finish in time:\n" + log.read()[-4000:]
    assert Image.objects.get(pk=good.pk).status == "ready"
    assert Image.objects.get(pk=bad.pk).status == "failed"
    assert Image.objects.get(pk=after.pk).status == "ready"
    assert Image.objects.get(pk=good.pk).regions.filter(kind="global").count() == 1
    assert process.poll() is None, "the cluster died"
