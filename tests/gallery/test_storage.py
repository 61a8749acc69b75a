"""Image bytes go through Django's storage API: the app works on a store that is not this disk.

They run on Django's InMemoryStorage and on a real S3 API (moto's server, a process of its own,
through django-storages' S3Storage as MEDIA_STORAGE sets it): if any code still built a path under
MEDIA_ROOT, these flows would fail or leave files there.
"""

import contextlib
import time

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from rest_framework.test import APIClient

from gallery.models import Image
from gallery.services import image_delete, thumbnail_name
from search.queries import BoxQuery
from search.query import search
from tests import images
from tests.conftest import upload_file


@pytest.fixture(params=["memory", "s3"])
def object_store(request, settings):
    """Django's InMemoryStorage, and a real S3 API (moto's server) through django-storages."""
    if request.param == "memory":
        settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    else:
        request.getfixturevalue("s3_storage")
    yield default_storage
    assert not settings.MEDIA_ROOT.exists(), "something wrote to MEDIA_ROOT behind the storage's back"


def test_upload_processing_serving_search_and_delete_work_on_an_object_store(
    owner, object_store, colour_proposer, django_capture_on_commit_callbacks
):
    api = APIClient()
    api.force_authenticate(owner)
    with django_capture_on_commit_callbacks(execute=True):  # the worker reads the originals from the store
        response = api.post(
            reverse("api:images"),
            {"files": [upload_file(images.png(seed=3), "scene.png"), upload_file(images.png(seed=4), "other.png")]},
            format="multipart",
        )
    assert response.status_code == 201
    image, other = Image.objects.get(original_name="scene.png"), Image.objects.get(original_name="other.png")
    assert image.status == "ready" and image.regions.filter(kind="global").count() == 1
    assert object_store.exists(image.file)

    original = api.get(reverse("api:image_file", args=[image.pk]))
    assert original.status_code == 200 and b"".join(original.streaming_content) == images.png(seed=3)
    thumbnail = api.get(reverse("api:image_thumbnail", args=[image.pk]))
    assert thumbnail.status_code == 200 and object_store.exists(thumbnail_name(image))

    # A box query crops the stored original: read from the store too.
    page = search(user=owner, query=BoxQuery(image_id=image.pk, box=(0, 0, image.width, image.height)), min_score=-1)
    assert [result.image.pk for result in page.results] == [other.pk]

    with django_capture_on_commit_callbacks(execute=True):
        image_delete(image=image)
    assert not object_store.exists(image.file) and not object_store.exists(thumbnail_name(image))


@pytest.fixture(params=["filesystem", "s3"])
def media_store(request, settings):
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    return request.param


def test_the_sweep_removes_stored_files_no_photo_owns_and_keeps_every_photos_own(
    owner, stranger, media_store, colour_proposer, django_capture_on_commit_callbacks
):
    """Issue 31: an upload puts its original before its COMMIT, so a process killed between the two
    left an object that nothing removed (the filesystem's `.part` files had a sweep)."""
    import uuid
    from datetime import timedelta

    from gallery import storage
    from gallery.services import derived_file_names, image_create, image_trash, orphan_files_delete

    with django_capture_on_commit_callbacks(execute=True):
        kept = image_create(owner=owner, upload=upload_file(images.png(seed=3), "kept.png")).image
        trashed = image_create(owner=owner, upload=upload_file(images.png(seed=4), "trashed.png")).image
        theirs = image_create(owner=stranger, upload=upload_file(images.png(seed=5), "theirs.png")).image
    image_trash(image=Image.objects.get(pk=trashed.pk))  # still theirs to restore: its files stay
    photos = [Image.all_objects.get(pk=photo.pk) for photo in (kept, trashed, theirs)]
    owned = [name for photo in photos for name in [photo.file, *derived_file_names(photo)] if storage.exists(name)]
    assert len(owned) >= 6  # originals and thumbnails at least
    left = [
        f"originals/{owner.pk}/{uuid.uuid4().hex}.png",  # an upload killed before its COMMIT
        f"thumbnails/{owner.pk}/{uuid.uuid4().hex}.jpg",  # a thumbnail made as its photo was deleted
        f"originals/{stranger.pk}/{uuid.uuid4().hex}.jpg",
    ]
    for name in left:
        storage.write(name, images.png(seed=9))

    assert orphan_files_delete(older_than=timedelta(hours=1)) == 0  # new files: perhaps an upload in flight
    assert all(storage.exists(name) for name in left)
    assert orphan_files_delete(older_than=timedelta(0)) == len(left)
    assert not any(storage.exists(name) for name in left)
    assert all(storage.exists(name) for name in owned)


COMMIT_WAITS = """
CREATE FUNCTION test_commit_waits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER test_commit_waits AFTER INSERT ON gallery_image
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_commit_waits();
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_web_process_killed_between_its_put_and_its_commit_leaves_an_object_the_sweep_removes(
    settings, s3_server, tmp_path
):
    """Issue 31, with real processes: `make web` on a real S3 API uploads a photo; its COMMIT is held
    (a deferred trigger waits on a lock this test holds) after the original was put in the bucket;
    the web server is killed -9 there. PostgreSQL drops the transaction (the web process's
    connections check for a lost client), the object stays, no row names it, and the sweep removes
    it."""
    import signal
    import threading
    from datetime import timedelta

    import requests
    from django.db import connection

    from gallery.services import orphan_files_delete
    from gallery.tokens import token_create
    from tests.conftest import make_user, stop_process_group
    from tests.s3 import S3Server
    from tests.servers import Server, free_port, server_command, server_env

    options = s3_server.new_bucket()
    token = token_create(user=make_user("uploader"))[1]
    port = free_port()
    env = {
        **server_env(settings),
        **S3Server.environment(options),
        "PGOPTIONS": "-c client_connection_check_interval=200ms",
    }
    with connection.cursor() as cursor:
        cursor.execute(COMMIT_WAITS)
        cursor.execute("SELECT pg_advisory_lock(4242)")
    server = Server(server_command("make web", port), env, port, tmp_path / "web.log")
    try:

        def upload() -> None:
            with contextlib.suppress(requests.RequestException):  # its server is killed mid-request
                requests.post(
                    f"{server.url}/api/images/",
                    files={"files": ("held.png", images.png(seed=12), "image/png")},
                    headers={"Authorization": f"Token {token}"},
                    timeout=60,
                )

        uploading = threading.Thread(target=upload, daemon=True)
        uploading.start()
        deadline = time.monotonic() + 60
        while not s3_server.names(options["bucket_name"], "originals/"):
            assert time.monotonic() < deadline and uploading.is_alive(), server.log()
            time.sleep(0.1)
        stop_process_group(server.process, signal.SIGKILL)  # put, not committed: killed here

        def waiting() -> int:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                return cursor.fetchone()[0]

        deadline = time.monotonic() + 20
        while waiting():
            assert time.monotonic() < deadline, "the killed web process's transaction is still waiting"
            time.sleep(0.1)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(4242)")
            cursor.execute("DROP TRIGGER test_commit_waits ON gallery_image; DROP FUNCTION test_commit_waits()")
        server.stop()
    left = s3_server.names(options["bucket_name"], "originals/")
    assert Image.all_objects.count() == 0 and len(left) == 1  # an object no row names
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    assert orphan_files_delete(older_than=timedelta(0)) == 1
    assert s3_server.names(options["bucket_name"]) == []
