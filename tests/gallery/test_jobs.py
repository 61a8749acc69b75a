"""Where processing stands, for staff (the jobs page, `manage.py jobs`) and for each person (their
own photos on "My images"): counts, rate, time left, why photos failed; pause and resume."""

from datetime import timedelta
from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from gallery.jobs import jobs_summary
from gallery.models import Image
from gallery.services import image_create
from search.ingest import image_process
from tests import images
from tests.conftest import upload_file


def queued(owner, seeds, django_capture_on_commit_callbacks) -> list[Image]:
    """Photos uploaded and queued, not processed yet."""
    with django_capture_on_commit_callbacks(execute=False):
        return [
            image_create(owner=owner, upload=upload_file(images.png(seed=seed), f"{seed}.png")).image for seed in seeds
        ]


def test_the_summary_counts_rates_and_says_how_long_the_rest_takes(owner, django_capture_on_commit_callbacks):
    photos = queued(owner, range(40, 50), django_capture_on_commit_callbacks)
    now = timezone.now()
    Image.objects.filter(pk__in=[p.pk for p in photos[:3]]).update(
        status="ready", processed_at=now - timedelta(minutes=5)
    )
    Image.objects.filter(pk__in=[p.pk for p in photos[3:5]]).update(status="failed", processed_at=now, error="Corrupt.")
    Image.objects.filter(pk=photos[5].pk).update(status="failed", processed_at=now - timedelta(hours=2), error="Other.")
    jobs = jobs_summary()
    assert jobs.counts == {"pending": 4, "processing": 0, "ready": 3, "failed": 3}
    searchable = jobs.searchable
    assert (searchable.waiting, searchable.running, searchable.done, searchable.failed) == (4, 0, 3, 3)
    assert searchable.finished_recently == 5 and searchable.per_minute == 5 / 15  # the last 15 minutes
    assert searchable.eta_seconds == 4 / (5 / 15) * 60 and jobs.eta_words() == "about 12 minutes left"
    # None has its objects yet: the 3 searchable and the 4 to come still need them, at no rate so far.
    assert (jobs.objects.waiting, jobs.objects.done, jobs.left) == (7, 0, 7)
    assert jobs.objects.eta_words() == "time left not known yet"
    assert jobs.failures == [("Corrupt.", 2), ("Other.", 1)]


def test_staff_pause_and_resume_and_nobody_else_sees_the_page(
    client, owner, upload, django_capture_on_commit_callbacks
):
    client.force_login(owner)
    assert client.get(reverse("gallery:jobs")).status_code == 404
    staff = get_user_model().objects.create_user("curator", password="curator-pass-123", is_staff=True)
    client.force_login(staff)
    client.post(reverse("gallery:jobs"), {"action": "pause"})
    assert "Processing is paused" in client.get(reverse("gallery:jobs")).content.decode()
    photo = upload(owner, images.png(seed=51), "51.png").image  # queued; its task finds processing paused
    assert Image.objects.get(pk=photo.pk).status == "pending" and image_process(image_id=photo.pk) == "paused"
    with django_capture_on_commit_callbacks(execute=True):  # queued again at once; the task runs here
        client.post(reverse("gallery:jobs"), {"action": "resume"})
    assert Image.objects.get(pk=photo.pk).status == "ready"


def test_the_command_prints_the_summary_and_pauses(owner, upload, django_capture_on_commit_callbacks):
    out = StringIO()
    call_command("jobs", "--pause", stdout=out)
    for seed in (52, 53):
        upload(owner, images.png(seed=seed), f"{seed}.png")
    out = StringIO()
    call_command("jobs", stdout=out)
    assert "0 of 2 searchable (time left not known yet), 0 with objects" in out.getvalue()
    assert "searchable: 2 waiting, 0 in progress, 0 done, 0 failed" in out.getvalue() and "PAUSED" in out.getvalue()
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("jobs", "--resume", stdout=out)
    assert "Processing resumed: 2 waiting photo(s) queued again." in out.getvalue()
    assert set(Image.objects.values_list("status", flat=True)) == {"ready"}  # their tasks ran at the commit


def test_a_person_sees_how_far_their_own_import_is(client, owner, stranger, django_capture_on_commit_callbacks):
    queued(owner, [54, 55, 56], django_capture_on_commit_callbacks)
    client.force_login(owner)
    page = client.get(reverse("gallery:my_images")).content.decode()
    assert "Processing your photos: 0 of 3 searchable (time left not known yet), 0 with objects" in page
    client.force_login(stranger)
    assert "Processing your photos" not in client.get(reverse("gallery:my_images")).content.decode()
