"""A media folder that fills up or turns read-only: a sentence with 507 / 503, and nothing left behind.

The media folder is a real 1 MiB tmpfs mounted for the test (needs root, which CI has).
"""

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image as PILImage
from rest_framework.test import APIClient

from gallery.models import Image
from tests import images
from tests.conftest import upload_file


@pytest.fixture
def small_disk(settings, tmp_path):
    mount_point = tmp_path / "small-media"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here ({mounted.stderr.strip()}); CI runs as root")
    settings.MEDIA_ROOT = mount_point
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def noise_png(seed: int) -> bytes:
    """A PNG that does not compress: about 200 KB, so five fill the disk."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(260, 260, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def files_on(disk: Path) -> set[str]:
    return {path.relative_to(disk).as_posix() for path in disk.rglob("*") if path.is_file()}


def test_a_full_disk_answers_507_with_a_sentence_and_keeps_what_was_stored(
    owner, small_disk, django_capture_on_commit_callbacks
):
    api = APIClient()
    api.force_authenticate(owner)
    answers = []
    with django_capture_on_commit_callbacks(execute=False):  # storage is the subject here, not processing
        for seed in range(12):
            response = api.post(
                reverse("api:images"), {"files": [upload_file(noise_png(seed), f"{seed}.png")]}, format="multipart"
            )
            answers.append(response.status_code)
            if response.status_code == 507:
                break
    assert answers[-1] == 507, answers
    assert set(answers[:-1]) == {201}
    assert "storage is full" in response.json()["detail"]
    # Every stored image has its file, and nothing else is on the disk: no .part, no orphan.
    assert Image.objects.count() == len(answers) - 1
    assert files_on(small_disk) == set(Image.objects.values_list("file", flat=True))

    # The web page says the same in words, with the same status.
    web = Client()
    web.force_login(owner)
    page = web.post(reverse("gallery:upload"), {"files": [upload_file(noise_png(99), "more.png")]})
    assert page.status_code == 507 and "storage is full" in page.content.decode()
    assert files_on(small_disk) == set(Image.objects.values_list("file", flat=True))


def test_a_read_only_disk_answers_503_and_thumbnails_are_still_served(owner, small_disk, upload, settings):
    from gallery.services import thumbnail_name

    stored = upload(owner, images.png(seed=1)).image
    (small_disk / thumbnail_name(stored)).unlink()  # the worker kept one; a page is to make it now
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    api = APIClient()
    api.force_authenticate(owner)
    response = api.post(
        reverse("api:images"), {"files": [upload_file(images.png(seed=2), "2.png")]}, format="multipart"
    )
    assert response.status_code == 503
    assert "not writable" in response.json()["detail"]
    assert Image.objects.count() == 1
    # The thumbnail cannot be cached on a read-only disk; it is made in memory instead of failing.
    thumbnail = api.get(reverse("api:image_thumbnail", args=[stored.pk]))
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    assert files_on(small_disk) == {stored.file}
    assert os.statvfs(small_disk).f_flag & os.ST_RDONLY


def test_a_delete_on_a_read_only_disk_answers_and_the_sweep_removes_the_file_later(
    owner, small_disk, upload, django_capture_on_commit_callbacks
):
    from gallery.models import FileToDelete
    from gallery.services import files_delete_again, thumbnail_name

    stored = upload(owner, images.png(seed=1)).image
    kept = sorted([stored.file, thumbnail_name(stored)])  # the original and the thumbnail the worker made
    api = APIClient()
    api.force_authenticate(owner)
    assert api.delete(reverse("api:image", args=[stored.pk])).status_code == 204  # to the trash
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with django_capture_on_commit_callbacks(execute=True):  # the file removal runs once the delete commits
        response = api.delete(reverse("api:trashed_image", args=[stored.pk]))  # for good
    assert response.status_code == 204  # the photo is gone for its owner: the row was the record
    assert not Image.all_objects.filter(pk=stored.pk).exists()
    assert stored.file in files_on(small_disk)  # the disk refused; remembered, not forgotten
    assert sorted(FileToDelete.objects.values_list("name", flat=True)) == kept
    assert files_delete_again() == 0  # still read-only: they stay remembered
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert files_delete_again() == 2
    assert files_on(small_disk) == set() and not FileToDelete.objects.exists()
