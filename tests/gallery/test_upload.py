"""Uploading: each file gets its own outcome, good files are kept, rejected ones leave nothing behind."""

import pytest
from django.urls import reverse

from gallery.models import Image
from gallery.services import TooManyFiles, images_create
from tests import images
from tests.conftest import upload_file


def stored_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_accepted_upload_is_stored_under_a_generated_name(owner, upload, settings):
    outcome = upload(owner, images.png(), name="../../etc/My Cat.png")
    image = Image.objects.get(pk=outcome.image.pk)
    assert outcome.outcome == "accepted"
    assert image.original_name == "My Cat.png"
    assert image.file.startswith(f"originals/{owner.pk}/") and "Cat" not in image.file
    assert (settings.MEDIA_ROOT / image.file).read_bytes() == images.png()


def test_a_rejected_upload_stores_no_file_and_no_row(owner, upload, settings):
    outcome = upload(owner, images.truncated_jpeg(), name="broken.jpg")
    assert outcome.outcome == "rejected" and "truncated" in outcome.message
    assert Image.objects.count() == 0
    assert stored_files(settings) == []


def test_the_same_bytes_twice_are_a_duplicate_and_not_reprocessed(owner, upload):
    first = upload(owner, images.png(), name="a.png")
    attempts = Image.objects.get(pk=first.image.pk).attempts
    second = upload(owner, images.png(), name="b.png")
    assert second.outcome == "duplicate" and second.image.pk == first.image.pk
    assert "a.png" in second.message
    assert Image.objects.count() == 1
    assert Image.objects.get(pk=first.image.pk).attempts == attempts


def test_duplicates_are_per_owner(owner, stranger, upload):
    upload(owner, images.png())
    assert upload(stranger, images.png()).outcome == "accepted"
    assert Image.objects.count() == 2


def test_a_batch_keeps_its_good_files_when_others_are_rejected(owner, settings, django_capture_on_commit_callbacks):
    files = [
        upload_file(images.png(seed=1), "good-1.png"),
        upload_file(b"", "empty.jpg"),
        upload_file(images.SVG, "drawing.svg"),
        upload_file(images.jpeg(seed=2), "good-2.jpg"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = images_create(owner=owner, uploads=files)
    assert [o.outcome for o in outcomes] == ["accepted", "rejected", "rejected", "accepted"]
    assert set(Image.objects.values_list("original_name", flat=True)) == {"good-1.png", "good-2.jpg"}
    assert len([path for path in stored_files(settings) if "originals" in path.parts]) == 2  # (and thumbnails)


def test_a_batch_over_the_file_limit_is_refused_whole(owner, settings):
    settings.MAX_FILES_PER_UPLOAD = 2
    with pytest.raises(TooManyFiles, match="at most 2 files"):
        images_create(owner=owner, uploads=[upload_file(images.png(seed=s), f"{s}.png") for s in range(3)])
    assert Image.objects.count() == 0


def test_an_oversized_file_is_refused_without_reading_it_all(owner, upload, settings):
    settings.MAX_UPLOAD_BYTES = 10_000
    outcome = upload(owner, images.noise_png(100, 100))
    assert outcome.outcome == "rejected" and "limit" in outcome.message


# --- The web form ---------------------------------------------------------------------------


def test_web_upload_shows_each_files_outcome(client, owner):
    client.force_login(owner)
    response = client.post(
        reverse("gallery:upload"),
        {"files": [upload_file(images.png(), "cat.png"), upload_file(b"hello", "dog.jpg")]},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "cat.png</strong>: accepted" in page
    assert "dog.jpg</strong>: rejected" in page and "not an image" in page


def test_web_upload_with_only_bad_files_answers_400_with_reasons(client, owner):
    client.force_login(owner)
    response = client.post(reverse("gallery:upload"), {"files": [upload_file(images.HTML, "page.html")]})
    assert response.status_code == 400
    assert "SVG and HTML files are not accepted" in response.content.decode()


def test_web_upload_over_the_file_count_says_so(client, owner, settings):
    settings.MAX_FILES_PER_UPLOAD = 2
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    client.force_login(owner)
    files = [upload_file(images.png(seed=s), f"{s}.png") for s in range(3)]
    response = client.post(reverse("gallery:upload"), {"files": files})
    assert response.status_code == 400
    assert "at most 2 files" in response.content.decode()
    assert Image.objects.count() == 0


def test_web_upload_requires_login(client, db):
    response = client.post(reverse("gallery:upload"), {"files": [upload_file(images.png())]})
    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert Image.objects.count() == 0


def long_name_body() -> tuple[bytes, str]:
    """A multipart body whose one file has a 1,000-character name, as curl sends it (Django's test
    client shortens file names on the way)."""
    body = (
        b'--B\r\nContent-Disposition: form-data; name="files"; filename="' + b"a" * 1000 + b'.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + images.png() + b"\r\n--B--\r\n"
    )
    return body, "multipart/form-data; boundary=B"


def test_too_many_files_through_a_csrf_checked_form_get_our_sentence_not_a_bare_400(owner, settings):
    from django.test import Client

    settings.MAX_FILES_PER_UPLOAD = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    client = Client(enforce_csrf_checks=True)  # CSRF checking reads the body before our view does
    client.force_login(owner)
    files = [upload_file(images.png(seed=n), f"{n}.png") for n in range(3)]
    response = client.post(reverse("gallery:upload"), {"files": files})
    assert response.status_code == 400
    assert "Too many files at once; upload at most 2 files" in response.content.decode()


def test_a_file_name_too_long_for_the_form_headers_gets_a_sentence(owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    body, content_type = long_name_body()
    response = client.generic("POST", reverse("gallery:upload"), body, content_type=content_type)
    assert response.status_code == 400 and "file name is too long" in response.content.decode()


def test_the_api_with_a_session_login_answers_json_for_too_many_files_and_long_names(owner, settings):
    from rest_framework.test import APIClient

    settings.MAX_FILES_PER_UPLOAD = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(owner)  # a browser session, as the upload page's script uses
    api.get(reverse("gallery:upload"))  # the page sets the CSRF cookie its script sends back
    files = [upload_file(images.png(seed=n), f"{n}.png") for n in range(3)]
    response = api.post(
        reverse("api:images"), {"files": files}, format="multipart", HTTP_X_CSRFTOKEN=api.cookies["csrftoken"].value
    )
    assert response.status_code == 400 and "Too many files at once" in response.json()["detail"]

    token_api = APIClient()
    token_api.force_authenticate(owner)
    body, content_type = long_name_body()
    long_name = token_api.generic("POST", reverse("api:images"), body, content_type=content_type)
    assert long_name.status_code == 400 and "file name is too long" in long_name.json()["detail"]
