"""The image row is the record of work: claims, heartbeats, and the recovery sweep, on both brokers.

These run in one process against the real broker tables / lists; tests/gallery/test_worker.py kills
real worker processes.
"""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from gallery.models import Image
from gallery.services import image_create
from gallery.work_queue import (
    Heartbeat,
    claim_fail,
    claim_progress,
    db_retrying,
    image_claim,
    image_queue_again,
    images_recover,
    queued_image_ids,
)
from tests import images
from tests.conftest import REDIS_TEST_URL, terminate_database_connection, upload_file


@pytest.fixture(params=["orm", "redis"])
def broker(request, monkeypatch):
    """Tasks go to a real broker (not run in-process); each test gets its own queue."""
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", f"test-{uuid.uuid4().hex[:8]}")
    if request.param == "redis":
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", REDIS_TEST_URL)
    from django_q.brokers import get_broker

    queue = get_broker()
    yield queue
    queue.delete_queue()


def queued(owner, seed: int, django_capture_on_commit_callbacks) -> Image:
    with django_capture_on_commit_callbacks(execute=True):
        return image_create(owner=owner, upload=upload_file(images.png(seed=seed), f"{seed}.png")).image


def age(image: Image, **fields) -> None:
    """Move the image's timestamps into the past, as if the worker had gone quiet long ago."""
    long_ago = timezone.now() - timedelta(hours=1)
    Image.objects.filter(pk=image.pk).update(**{name: long_ago for name in fields})


def test_an_image_is_claimed_once(owner, broker, django_capture_on_commit_callbacks):
    image = queued(owner, 1, django_capture_on_commit_callbacks)
    first = image_claim(image_id=image.pk)
    assert first is not None and first.attempt == 1
    assert image_claim(image_id=image.pk) is None  # a duplicate task finds it taken


def test_a_person_retrying_takes_the_claim_away_from_the_worker(owner, broker, django_capture_on_commit_callbacks):
    image = queued(owner, 1, django_capture_on_commit_callbacks)
    claim = image_claim(image_id=image.pk)
    assert claim_progress(claim, 50)
    image_queue_again(image_id=image.pk)
    assert not claim_progress(claim, 60)
    assert not claim_fail(claim, "too late")
    refreshed = Image.objects.get(pk=image.pk)
    assert (refreshed.status, refreshed.error, refreshed.attempts) == ("pending", "", 0)


def test_the_queue_lists_images_with_a_waiting_task(owner, broker, django_capture_on_commit_callbacks):
    first = queued(owner, 1, django_capture_on_commit_callbacks)
    second = queued(owner, 2, django_capture_on_commit_callbacks)
    assert sorted(queued_image_ids()) == [first.pk, second.pk]


def test_recovery_queues_again_a_pending_image_whose_task_was_lost(owner, broker, django_capture_on_commit_callbacks):
    kept = queued(owner, 1, django_capture_on_commit_callbacks)
    lost = queued(owner, 2, django_capture_on_commit_callbacks)
    broker.delete_queue()  # both tasks gone (a Redis worker killed after taking them) ...
    with django_capture_on_commit_callbacks(execute=True):
        kept_task_again = image_queue_again(image_id=kept.pk)  # ... but one was queued again since
    assert kept_task_again
    age(lost, queued_at=True)
    with django_capture_on_commit_callbacks(execute=True):
        result = images_recover()
    assert (result.requeued, result.failed) == ([lost.pk], [])
    assert sorted(queued_image_ids()) == sorted([kept.pk, lost.pk])
    # A second sweep finds a task waiting for each image: nothing more to do.
    with django_capture_on_commit_callbacks(execute=True):
        assert images_recover().requeued == []


def test_an_enqueue_lost_after_commit_is_made_good_after_the_stale_window(
    owner, broker, django_capture_on_commit_callbacks
):
    # Committed, but the process died before the broker had the task: never acknowledged.
    with django_capture_on_commit_callbacks(execute=False):
        image = image_create(owner=owner, upload=upload_file(images.png(seed=1), "1.png")).image
    assert Image.objects.get(pk=image.pk).queued_at is None and queued_image_ids() == []
    assert images_recover().requeued == []  # it may still be on its way
    age(image, updated_at=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert images_recover().requeued == [image.pk]
    assert queued_image_ids() == [image.pk] and Image.objects.get(pk=image.pk).queued_at is not None


# Nothing listens on port 1: connecting to a broker there is refused, as to a stopped Redis.
STOPPED_REDIS = "redis://127.0.0.1:1/0"


def test_an_upload_that_meets_a_stopped_broker_is_stored_and_queued_once_the_broker_is_back(
    owner, broker, monkeypatch, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    from gallery import storage

    api = APIClient()
    api.force_authenticate(owner)
    working = (Conf.ORM, Conf.REDIS)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", STOPPED_REDIS)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/images/", {"files": [upload_file(images.png(seed=3), "3.png")]}, format="multipart")
    assert response.status_code == 201, response.content  # stored: the row is the record of work
    (stored,) = response.json()
    image = Image.objects.get(pk=stored["image"]["id"])
    assert (stored["outcome"], image.status, image.queued_at) == ("accepted", "pending", None)
    assert storage.exists(image.file)  # the file stays with its row
    # The client's retry is told it is already there, not refused.
    again = api.post("/api/images/", {"files": [upload_file(images.png(seed=3), "3.png")]}, format="multipart")
    assert again.status_code == 201 and again.json()[0]["outcome"] == "duplicate"
    monkeypatch.setattr(Conf, "ORM", working[0])
    monkeypatch.setattr(Conf, "REDIS", working[1])
    age(image, updated_at=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert images_recover().requeued == [image.pk]
    assert queued_image_ids() == [image.pk]


@pytest.mark.django_db(transaction=True)
def test_an_upload_whose_database_stops_at_the_enqueue_is_stored_and_found_again(owner, monkeypatch):
    from django.db import connection, transaction

    from gallery import storage

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", f"test-{uuid.uuid4().hex[:8]}")  # the ORM broker
    port = connection.settings_dict["PORT"]

    def database_stops() -> None:
        # The server goes away after the COMMIT: the connection is gone, and a new one is refused
        # (nothing listens on port 1), as the ORM broker's INSERT meets it.
        connection.close()
        connection.settings_dict["PORT"] = 1

    try:
        with transaction.atomic():
            transaction.on_commit(database_stops)  # runs before the enqueue that image_create registers
            outcome = image_create(owner=owner, upload=upload_file(images.png(seed=4), "4.png"))
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port  # the database is back
    assert outcome.outcome == "accepted"
    image = Image.objects.get(pk=outcome.image.pk)
    assert (image.status, image.queued_at) == ("pending", None) and storage.exists(image.file)
    age(image, updated_at=True)
    assert images_recover().requeued == [image.pk]
    assert queued_image_ids() == [image.pk]


def test_a_task_taken_by_a_worker_gets_time_unless_a_worker_is_starting(
    owner, broker, django_capture_on_commit_callbacks
):
    image = queued(owner, 1, django_capture_on_commit_callbacks)
    broker.delete_queue()  # a worker took the task: it is in that worker's prefetch, or lost with it
    assert images_recover().requeued == []
    # A worker that starts holds no prefetch: whatever is missing from the broker now is lost.
    with django_capture_on_commit_callbacks(execute=True):
        assert images_recover(starting=True).requeued == [image.pk]


def test_a_task_locked_by_a_dead_orm_cluster_counts_as_lost(
    owner, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(Conf, "SYNC", False)
    image = queued(owner, 1, django_capture_on_commit_callbacks)
    # What the pusher does when it takes a task: lock it for Q_CLUSTER["retry"] seconds.
    OrmQ.objects.update(lock=timezone.now() + timedelta(seconds=settings.Q_CLUSTER["retry"]))
    assert queued_image_ids() == []
    age(image, queued_at=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert images_recover().requeued == [image.pk]
    assert OrmQ.objects.count() == 2  # the locked one runs later and finds nothing to do


def test_recovery_takes_back_an_image_whose_worker_went_silent(owner, broker, django_capture_on_commit_callbacks):
    image = queued(owner, 1, django_capture_on_commit_callbacks)
    claim = image_claim(image_id=image.pk)
    assert images_recover().requeued == []  # its heartbeat is fresh: someone is working on it
    age(image, heartbeat_at=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert images_recover().requeued == [image.pk]
    refreshed = Image.objects.get(pk=image.pk)
    assert (refreshed.status, refreshed.claim, refreshed.attempts) == ("pending", None, 1)
    assert not claim_progress(claim, 90)  # the silent worker, should it wake up, may not write
    assert image.pk in queued_image_ids()


def test_a_claim_held_by_a_dead_process_of_this_machine_is_taken_back_without_waiting(
    owner, broker, django_capture_on_commit_callbacks
):
    import subprocess
    import sys

    image = queued(owner, 1, django_capture_on_commit_callbacks)
    image_claim(image_id=image.pk)
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=False
    )
    host = Image.objects.get(pk=image.pk).claimed_by.rsplit(":", 1)[0]
    assert images_recover().requeued == []  # held by this (live) test process
    Image.objects.filter(pk=image.pk).update(claimed_by=f"{host}:{finished.stdout.strip()}")  # a process now gone
    with django_capture_on_commit_callbacks(execute=True):
        assert images_recover().requeued == [image.pk]  # its heartbeat is still fresh: no waiting for it


def test_an_image_that_keeps_stopping_its_worker_fails_with_a_reason(
    owner, broker, settings, django_capture_on_commit_callbacks
):
    image = queued(owner, 1, django_capture_on_commit_callbacks)
    for attempt in range(1, settings.IMAGE_MAX_ATTEMPTS + 1):
        assert image_claim(image_id=image.pk).attempt == attempt
        age(image, heartbeat_at=True)
        with django_capture_on_commit_callbacks(execute=True):
            result = images_recover()
    assert result.failed == [image.pk]
    failed = Image.objects.get(pk=image.pk)
    assert failed.status == "failed"
    assert f"stopped before finishing {settings.IMAGE_MAX_ATTEMPTS} times" in failed.error


def test_an_image_counts_as_stuck_only_when_nothing_is_happening(owner, broker, django_capture_on_commit_callbacks):
    image = queued(owner, 1, django_capture_on_commit_callbacks)
    age(image, queued_at=True, updated_at=True)
    assert not Image.objects.get(pk=image.pk).looks_stuck  # waiting in the queue is fine
    Image.objects.filter(pk=image.pk).update(queued_at=None)
    assert Image.objects.get(pk=image.pk).looks_stuck  # never reached the queue
    Image.objects.filter(pk=image.pk).update(queued_at=timezone.now())
    image_claim(image_id=image.pk)
    assert not Image.objects.get(pk=image.pk).looks_stuck
    age(image, heartbeat_at=True)
    assert Image.objects.get(pk=image.pk).looks_stuck


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_a_claim_alive_and_notices_when_it_is_lost(
    owner, broker, django_capture_on_commit_callbacks
):
    image = queued(owner, 1, django_capture_on_commit_callbacks)
    claim = image_claim(image_id=image.pk)
    age(image, heartbeat_at=True)
    with Heartbeat(claim, every=0.05) as heartbeat:
        deadline = time.monotonic() + 5
        while Image.objects.get(pk=image.pk).looks_stuck and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Image.objects.get(pk=image.pk).looks_stuck
        image_queue_again(image_id=image.pk)
        assert heartbeat.lost.wait(timeout=5)


@pytest.mark.django_db(transaction=True)
def test_a_database_connection_killed_under_a_step_is_retried(owner):
    terminate_database_connection()
    assert db_retrying(Image.objects.count) == 0
