"""Libraries read in place: a folder's photos are found, processed and shown without a copy, the
folder is never written, and rescans follow new, changed and removed files."""

import hashlib
import os
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from gallery.libraries import library_scan
from gallery.models import Image, Library
from gallery.services import image_restore, images_delete
from tests import images


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) with the hash of its bytes."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "Phone"
    (root / "2025" / "09").mkdir(parents=True)
    (root / "2025" / "09" / "IMG_0001.JPG").write_bytes(images.camera_jpeg(seed=1))
    (root / "2025" / "09" / "IMG_0002.HEIC").write_bytes(images.heic(seed=2))
    (root / "2025" / "IMG_0001.JPG").write_bytes(images.png(seed=3))  # the same name in another folder
    (root / "notes.txt").write_text("not a photo")
    (root / ".thumbnails").mkdir()
    (root / ".thumbnails" / "small.jpg").write_bytes(images.jpeg(seed=4))
    (root / "edits").mkdir()
    (root / "edits" / "draft.png").write_bytes(images.png(seed=5))
    return root


@pytest.fixture
def library(owner, folder, django_capture_on_commit_callbacks, colour_proposer):
    made = Library.objects.create(owner=owner, path=str(folder), exclude="edits/*")
    with django_capture_on_commit_callbacks(execute=True):  # the photos are processed as the commit would
        library_scan(made)
    return made


def test_a_folder_is_read_in_place_processed_and_never_written(client, owner, stranger, folder, library, settings):
    before = fingerprint(folder)
    photos = Image.objects.filter(library=library).order_by("file")
    assert [photo.file.split("/", 2)[2] for photo in photos] == [
        "2025/09/IMG_0001.JPG",
        "2025/09/IMG_0002.HEIC",
        "2025/IMG_0001.JPG",
    ]  # not the hidden, excluded or non-photo files
    assert {photo.status for photo in photos} == {"ready"} and not photos.filter(is_public=True).exists()
    assert not (settings.MEDIA_ROOT / "originals").exists()  # nothing copied
    assert Library.objects.get(pk=library.pk).last_scan.endswith("0 duplicates, 1 not photos")  # notes.txt
    client.force_login(owner)
    thumbnails = {
        b"".join(client.get(reverse("gallery:image_thumbnail", args=[p.pk])).streaming_content) for p in photos
    }
    assert len(thumbnails) == 3  # same-named files in two folders keep their own thumbnails
    original = photos.get(file__endswith="09/IMG_0001.JPG")
    download = client.get(reverse("gallery:image_file", args=[original.pk]) + "?download=1")
    assert b"".join(download.streaming_content) == (folder / "2025" / "09" / "IMG_0001.JPG").read_bytes()
    client.force_login(stranger)
    assert client.get(reverse("gallery:image_file", args=[original.pk])).status_code == 404
    # Trashing and purging a library photo removes the photo from the gallery, never the file.
    images_delete(queryset=Image.all_objects.filter(pk=original.pk))
    assert fingerprint(folder) == before


def test_a_rescan_follows_new_changed_removed_and_returning_files(
    owner, folder, library, django_capture_on_commit_callbacks
):
    changed = folder / "2025" / "09" / "IMG_0001.JPG"
    old = Image.objects.get(file__endswith="09/IMG_0001.JPG")
    changed.write_bytes(images.camera_jpeg(seed=9))  # edited on the phone: other bytes, same name
    os.utime(changed, (1_700_000_000, 1_700_000_000))
    (folder / "2025" / "IMG_0003.PNG").write_bytes(images.png(seed=6))
    heic = folder / "2025" / "09" / "IMG_0002.HEIC"
    kept = heic.read_bytes()
    heic.unlink()
    with django_capture_on_commit_callbacks(execute=True):
        scan = library_scan(library)
    assert scan.added == ["2025/IMG_0003.PNG"] and scan.changed == ["2025/09/IMG_0001.JPG"]
    assert scan.removed == ["2025/09/IMG_0002.HEIC"] and scan.unchanged == 1
    edited = Image.objects.get(pk=old.pk)
    assert edited.sha256 != old.sha256 and edited.status == "ready"  # the same photo, read again
    gone = Image.all_objects.get(file__endswith="IMG_0002.HEIC")
    assert gone.trashed_at is not None  # to the trash, restorable

    heic.write_bytes(kept)  # back (a re-synced folder)
    with django_capture_on_commit_callbacks(execute=True):
        again = library_scan(library)
    assert again.returned == ["2025/09/IMG_0002.HEIC"] and Image.objects.filter(pk=gone.pk).exists()
    assert library_scan(library).unchanged == 4  # nothing read again when nothing changed


def test_a_photo_its_owner_trashed_stays_in_the_trash_while_its_file_is_there(owner, library):
    photo = Image.objects.filter(library=library).first()
    api_trash = Image.all_objects.filter(pk=photo.pk)
    from gallery.services import image_trash

    image_trash(image=photo)
    library_scan(library)
    assert api_trash.get().trashed_at is not None
    image_restore(image=photo)
    assert Image.objects.filter(pk=photo.pk).exists()


def test_a_name_cannot_leave_its_librarys_folder(owner, library, tmp_path):
    from gallery import storage

    (tmp_path / "secret.png").write_bytes(images.png(seed=7))
    with pytest.raises(FileNotFoundError):
        storage.library_source(f"library/{library.pk}/../secret.png")
    assert not storage.exists(f"library/{library.pk}/../secret.png")


def test_the_command_adds_scans_and_lists(owner, folder, capsys, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("library", "add", str(folder), "--user", owner.username, "--exclude", "edits/*")
    out = capsys.readouterr().out
    assert "3 new, 0 changed" in out and "not read: notes.txt" in out
    call_command("library", "list")
    assert str(folder) in capsys.readouterr().out


def test_a_scan_with_a_time_budget_leaves_the_rest_for_the_next(owner, folder, django_capture_on_commit_callbacks):
    library = Library.objects.create(owner=owner, path=str(folder), exclude="edits/*")
    first = library_scan(library, seconds=0)  # the budget is spent before the first file
    assert first.left == 4 and not first.added and Library.objects.get(pk=library.pk).scanned_at is None
    assert "4 left for the next scan" in Library.objects.get(pk=library.pk).last_scan
    with django_capture_on_commit_callbacks(execute=True):
        second = library_scan(library)
    assert len(second.added) == 3 and second.left == 0 and Library.objects.get(pk=library.pk).scanned_at


def test_a_library_photo_whose_file_left_cannot_be_restored_until_the_file_is_back(
    client, owner, folder, library, upload
):
    from rest_framework.test import APIClient

    heic = folder / "2025" / "09" / "IMG_0002.HEIC"
    kept = heic.read_bytes()
    heic.unlink()
    library_scan(library)
    gone = Image.all_objects.get(file__endswith="IMG_0002.HEIC")
    api = APIClient()
    api.force_authenticate(owner)
    refused = api.post(reverse("api:trashed_image_restore", args=[gone.pk]))
    assert refused.status_code == 409 and "no longer in its library's folder" in refused.json()["detail"]
    client.force_login(owner)
    page = client.post(reverse("gallery:trash"), {"action": "restore", "image_ids": [gone.pk]}, follow=True)
    assert "no longer in its library" in page.content.decode()
    again = upload(owner, kept, "IMG_0002.HEIC")  # the same photo uploaded: said, not a server error
    assert again.outcome == "duplicate" and "no longer in its library" in again.message
    assert Image.all_objects.get(pk=gone.pk).trashed_at is not None


def test_staff_scan_a_library_from_the_admin(client, owner, folder, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    made = Library.objects.create(owner=owner, path=str(folder), exclude="edits/*")
    staff = get_user_model().objects.create_superuser("curator", password="curator-pass-123")
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            reverse("admin:gallery_library_changelist"),
            {"action": "scan_now", "_selected_action": [made.pk]},
            follow=True,
        )
    assert "3 new" in answer.content.decode() and Image.objects.filter(library=made).count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_watch_makes_a_library_due_as_soon_as_its_folder_changes(owner, folder):
    """Real inotify events, through watchfiles: a photo copied into a library scanned a minute ago
    makes it due now, not at its next rescan an hour later."""
    from gallery.libraries import LibraryWatch, libraries_due

    library = Library.objects.create(owner=owner, path=str(folder), rescan_minutes=60)
    elsewhere = Library.objects.create(owner=owner, path=str(folder.parent / "Other"), rescan_minutes=60)
    (folder.parent / "Other").mkdir()
    Library.objects.update(scanned_at=timezone.now())
    assert libraries_due() == []
    watch = LibraryWatch()
    watch.follow()
    try:
        time.sleep(0.5)  # the watch is set up
        (folder / "2025" / "IMG_0100.JPG").write_bytes(images.jpeg(seed=100))
        deadline = time.monotonic() + 15
        while not libraries_due() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [due.pk for due in libraries_due()] == [library.pk]  # not the other folder's library
        assert elsewhere.pk not in {due.pk for due in libraries_due()}
        # A library registered later is followed from the next sweep on.
        Library.objects.update(scanned_at=timezone.now())
        third = folder.parent / "Third"
        third.mkdir()
        added = Library.objects.create(owner=owner, path=str(third), rescan_minutes=60, scanned_at=timezone.now())
        watch.follow()
        time.sleep(0.5)
        (third / "a.png").write_bytes(images.png(seed=101))
        deadline = time.monotonic() + 15
        while not libraries_due() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [due.pk for due in libraries_due()] == [added.pk]
    finally:
        watch.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_running_worker_finds_a_photo_dropped_into_a_library_within_seconds(owner, folder, settings, tmp_path):
    from django_q.conf import Conf

    from tests.conftest import child_env
    from tests.gallery.test_worker import FAST_RECOVERY, Worker, wait_for

    library = Library.objects.create(owner=owner, path=str(folder), exclude="edits/*", rescan_minutes=60)
    worker = Worker(child_env(settings, **FAST_RECOVERY, Q_WORKERS="1", TORCH_THREADS="1"), tmp_path / "worker.log")
    Conf.SYNC = False
    worker.start()
    try:
        # The first scan (never scanned: due at once) brings the folder's three photos in.
        assert wait_for(
            lambda: Image.objects.filter(library=library, objects_status="found").count() == 3, timeout=90
        ), worker.log()
        (folder / "2025" / "09" / "IMG_0003.JPG").write_bytes(images.camera_jpeg(seed=7))
        started = time.monotonic()
        arrived = wait_for(
            lambda: Image.objects.filter(original_name="IMG_0003.JPG", status="ready").exists(), timeout=30
        )
        assert arrived, worker.log()
        seconds = time.monotonic() - started
        assert seconds < 20, f"searchable {seconds:.1f} s after it was written (its library rescans hourly)"
    finally:
        Conf.SYNC = True
        worker.stop()


def test_a_scan_checks_headers_only_and_a_file_that_does_not_decode_fails_naming_its_place(
    owner, folder, django_capture_on_commit_callbacks, colour_proposer
):
    """A scan does not decode each file twice (a HEIC takes a second): the first stage's decode is
    the check, and its failure says where the file is and what to do in the folder."""
    (folder / "2025" / "09" / "IMG_0009.JPG").write_bytes(images.truncated_jpeg())
    made = Library.objects.create(owner=owner, path=str(folder), exclude="edits/*")
    with django_capture_on_commit_callbacks(execute=True):
        scan = library_scan(made)
    assert "2025/09/IMG_0009.JPG" in scan.added and [path for path, _ in scan.rejected] == ["notes.txt"]
    broken = Image.objects.get(original_name="IMG_0009.JPG")
    assert broken.status == "failed"
    assert broken.error.startswith("The file 2025/09/IMG_0009.JPG in the library folder is truncated or corrupt")
    assert broken.error.endswith("replace it there with a good copy, or remove it.")
    assert set(Image.objects.exclude(pk=broken.pk).values_list("status", flat=True)) == {"ready"}
