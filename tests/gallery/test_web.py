"""Server-rendered pages: accounts, lists, the image page and its actions."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from gallery.models import Image
from search.index import get_index
from tests import images


def test_signup_logs_the_new_person_in(client, db):
    response = client.post(
        reverse("signup"),
        {"username": "newbie", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("gallery:upload")
    assert client.get(reverse("gallery:my_images")).context["user"].username == "newbie"


def test_signup_can_be_closed(client, db, settings):
    settings.ALLOW_SIGNUP = False
    response = client.post(
        reverse("signup"), {"username": "x", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"}
    )
    assert response.status_code == 403 and "Sign-up is closed" in response.content.decode()
    assert not get_user_model().objects.filter(username="x").exists()
    assert "Sign up" not in client.get(reverse("home")).content.decode()


def test_login_and_logout(client, owner):
    response = client.post(reverse("login"), {"username": "owner", "password": "owner-pass-123"})
    assert response.status_code == 302 and response["Location"] == reverse("gallery:my_images")
    assert client.get(reverse("gallery:my_images")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("gallery:my_images")).status_code == 302


def test_home_invites_anonymous_visitors_and_sends_members_to_their_images(client, owner):
    assert "Log in" in client.get(reverse("home")).content.decode()
    client.force_login(owner)
    assert client.get(reverse("home"))["Location"] == reverse("gallery:my_images")


def test_my_images_filters_by_status_and_visibility(client, owner, upload):
    upload(owner, images.png(seed=1), name="ready.png")
    failed = upload(owner, images.png(seed=2), name="broken.png").image
    Image.objects.filter(pk=failed.pk).update(status="failed", error="The stored file is missing.")
    client.force_login(owner)
    page = client.get(reverse("gallery:my_images") + "?status=failed").content.decode()
    assert "broken.png" in page and "ready.png" not in page and "The stored file is missing." in page
    page = client.get(reverse("gallery:my_images") + "?visibility=public").content.decode()
    assert "broken.png" not in page and "ready.png" not in page


def test_a_filter_that_matches_nothing_says_so_instead_of_inviting_uploads(client, owner, upload):
    upload(owner, images.png(seed=1), name="ready.png")
    client.force_login(owner)
    page = client.get(reverse("gallery:my_images") + "?status=failed").content.decode()
    assert "No images match these filters" in page and "Upload some" not in page


def test_pages_of_unfinished_images_update_their_badges_without_reloading(client, owner, upload):
    image = upload(owner).image
    Image.objects.filter(pk=image.pk).update(status="processing", progress=60)
    client.force_login(owner)
    for url in (reverse("gallery:image_detail", args=[image.pk]), reverse("gallery:my_images")):
        page = client.get(url).content.decode()
        # No <meta refresh>: it reloaded the page every few seconds, jumping to the top and losing focus.
        assert 'http-equiv="refresh"' not in page
        assert f'data-status-of="{image.pk}" data-live>Processing 60%' in page and "js/live.js" in page


def test_the_status_poll_answers_for_images_the_person_may_see_only(client, owner, stranger, upload):
    mine = upload(owner, images.png(seed=1)).image
    Image.objects.filter(pk=mine.pk).update(status="processing", objects_status="waiting", progress=40)
    secret = upload(stranger, images.png(seed=2)).image
    client.force_login(owner)
    body = client.get(reverse("gallery:image_statuses"), {"ids": f"{mine.pk},{secret.pk}"}).json()
    assert body == {
        "images": [
            {
                "id": mine.pk,
                "status": "processing",
                "objects_status": "waiting",
                "final": False,
                "error": "",
                "regions": mine.regions.count(),
                "label": "Processing 40%",
            }
        ]
    }
    assert client.get(reverse("gallery:image_statuses"), {"ids": "1,x"}).status_code == 400


def test_the_image_page_draws_object_boxes_in_percent(client, owner, upload, colour_proposer):
    image = upload(owner, images.png(160, 120)).image
    client.force_login(owner)
    page = client.get(reverse("gallery:image_detail", args=[image.pk])).content.decode()
    # The 20..53 x 20..60 rectangle of a 160x120 image: a link, so a keyboard reaches it and searches by it.
    assert "left:12.50%;top:16.67%;width:20.62%;height:33.33%" in page
    region = image.regions.get(kind="object", x1=20, y1=20)
    assert f'href="{reverse("search:search")}?region={region.pk}" aria-label="Object' in page
    assert "[20, 20, 53, 60]" not in page  # coordinates are for the API, not for people


def test_delete_asks_first_moves_to_the_trash_and_emptying_it_removes_file_and_vectors(
    client, owner, upload, settings, django_capture_on_commit_callbacks
):
    image = upload(owner).image
    region_ids = set(image.regions.values_list("pk", flat=True))
    client.force_login(owner)
    url = reverse("gallery:image_delete", args=[image.pk])
    assert "Delete “photo.png”?" in client.get(url).content.decode()
    assert Image.objects.filter(pk=image.pk).exists()
    client.post(url)
    assert not Image.objects.filter(pk=image.pk).exists() and (settings.MEDIA_ROOT / image.file).exists()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("gallery:trash"), {"action": "delete", "image_ids": [image.pk], "confirm": "yes"})
    assert not Image.all_objects.filter(pk=image.pk).exists()
    assert not (settings.MEDIA_ROOT / image.file).exists()
    assert region_ids and region_ids.isdisjoint(get_index().current().ids().tolist())


def test_download_sends_the_original_with_its_name(client, owner, upload):
    image = upload(owner, images.png(), name="Holiday ☀.png").image
    client.force_login(owner)
    response = client.get(reverse("gallery:image_file", args=[image.pk]) + "?download=1")
    assert response["Content-Disposition"] == "attachment; filename*=UTF-8''Holiday%20%E2%98%80.png"
    assert b"".join(response.streaming_content) == images.png()


def test_thumbnails_are_made_once_and_fit_the_configured_size(client, owner, upload, settings):
    settings.THUMBNAIL_SIZE = 64
    image = upload(owner, images.jpeg(160, 120, orientation=6)).image
    client.force_login(owner)
    url = reverse("gallery:image_thumbnail", args=[image.pk])
    client.get(url)
    from PIL import Image as PILImage

    from gallery.services import thumbnail_name

    path = settings.MEDIA_ROOT / thumbnail_name(image)
    with PILImage.open(path) as thumb:
        assert thumb.size == (48, 64)  # upright: the EXIF turn is applied
    mtime = path.stat().st_mtime_ns
    client.get(url)
    assert path.stat().st_mtime_ns == mtime


def test_admin_delete_asks_for_confirmation_then_removes_images_and_vectors(
    client, owner, upload, db, django_capture_on_commit_callbacks
):
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-pass-123")
    image = upload(owner).image
    region_ids = set(image.regions.values_list("pk", flat=True))
    client.force_login(admin)
    page = client.get(reverse("admin:gallery_image_changelist")).content.decode()
    assert "photo.png" in page
    # Thumbnails load as they scroll into view (issue 30, bug 16: a page of 91 took 6.3 s).
    thumbnails = [tag for tag in re.findall(r"<img [^>]*>", page) if "/thumbnail/" in tag]
    assert thumbnails and all('loading="lazy"' in tag for tag in thumbnails)
    change = client.get(reverse("admin:gallery_image_change", args=[image.pk]))
    assert change.status_code == 200
    crops = [tag for tag in re.findall(r"<img [^>]*>", change.content.decode()) if 'alt="region' in tag]
    assert crops and all('loading="lazy"' in tag for tag in crops)
    changelist = reverse("admin:gallery_image_changelist")
    asked = client.post(changelist, {"action": "delete_selected", "_selected_action": [image.pk]})
    assert asked.status_code == 200 and "Are you sure" in asked.content.decode()
    assert Image.objects.filter(pk=image.pk).exists()  # nothing deleted before the answer
    with django_capture_on_commit_callbacks(execute=True):
        client.post(changelist, {"action": "delete_selected", "_selected_action": [image.pk], "post": "yes"})
    assert not Image.objects.exists()
    assert region_ids and region_ids.isdisjoint(get_index().current().ids().tolist())


def test_admin_reprocess_action_queues_the_images(client, owner, upload, db, django_capture_on_commit_callbacks):
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-pass-123")
    image = upload(owner).image
    first_done = Image.objects.get(pk=image.pk).processed_at
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:gallery_image_changelist"), {"action": "reprocess", "_selected_action": [image.pk]})
    assert Image.objects.get(pk=image.pk).processed_at > first_done


def test_not_found_pages_use_the_site_layout(client, owner, settings):
    settings.DEBUG = False
    client.force_login(owner)
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and "not yours to see" in response.content.decode()


def test_region_crops_are_served_to_those_who_may_see_the_image(client, owner, stranger, upload, colour_proposer):
    import io

    from PIL import Image as PILImage

    image = upload(owner, images.png(160, 120)).image
    region = image.regions.filter(kind="object").order_by("x1").first()
    url = reverse("gallery:region_crop", args=[region.pk])
    client.force_login(owner)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with PILImage.open(io.BytesIO(response.content)) as crop:
        assert crop.size == (33, 40)  # the 20..53 x 20..60 rectangle
    client.force_login(stranger)
    assert client.get(url).status_code == 404


def test_the_admin_previews_other_peoples_private_images_and_crops(client, owner, friend, upload, colour_proposer):
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-pass-123")
    image = upload(owner, images.png(160, 120)).image  # private, and not the admin's
    region = image.regions.filter(kind="object").first()
    client.force_login(admin)
    page = client.get(reverse("admin:gallery_image_change", args=[image.pk])).content.decode()
    previews = [
        reverse("admin:gallery_image_thumbnail", args=[image.pk]),
        reverse("admin:gallery_region_crop", args=[region.pk]),
    ]
    for url in previews:
        assert url in page
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    # The gallery's own media URLs stay scoped to what a person may see, staff included.
    assert client.get(reverse("gallery:image_thumbnail", args=[image.pk])).status_code == 404
    client.force_login(friend)  # not staff: the admin's previews send them to the admin login
    assert all(client.get(url).status_code == 302 for url in previews)


def test_a_stuck_image_offers_retry_to_its_owner_and_retrying_processes_it(
    client, owner, upload, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    image = upload(owner).image
    url = reverse("gallery:image_detail", args=[image.pk])
    client.force_login(owner)
    # A worker took it and went silent a while ago (killed before recovery ran).
    long_ago = timezone.now() - timedelta(minutes=5)
    Image.objects.filter(pk=image.pk).update(status="processing", progress=60, heartbeat_at=long_ago)
    page = client.get(url).content.decode()
    assert "No progress for a while" in page and ">Retry</button>" in page
    # While its worker is alive there is nothing to retry.
    Image.objects.filter(pk=image.pk).update(heartbeat_at=timezone.now())
    assert ">Retry</button>" not in client.get(url).content.decode()
    Image.objects.filter(pk=image.pk).update(heartbeat_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("gallery:image_retry", args=[image.pk]))
    assert Image.objects.get(pk=image.pk).status == "ready"


def test_pages_send_a_content_security_policy_without_inline_scripts(client, owner):
    client.force_login(owner)
    policy = client.get(reverse("search:search"))["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.parametrize("url", ["search:search", "gallery:my_images", "gallery:upload", "gallery:account_tokens"])
def test_page_titles_are_plain_text(client, owner, url):
    """A <script> once sat inside the search page's <title> block, and tabs showed its markup."""
    client.force_login(owner)
    html = client.get(reverse(url)).content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert "<" not in title and title.endswith("· imgsearch")


def test_the_landing_page_names_the_app_once(client, db):
    """Its title read "imgsearch · imgsearch" (the base template's default block plus the suffix)."""
    html = client.get(reverse("home")).content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert title.count("imgsearch") == 1 and title.startswith("imgsearch")


def test_every_page_names_itself_in_its_title():
    """A page template without a title block got " · imgsearch" alone in the tab."""
    from django.conf import settings

    pages = [
        p for p in (settings.BASE_DIR / "templates").rglob("*.html") if '{% extends "base.html" %}' in p.read_text()
    ]
    assert len(pages) > 20
    assert [
        p.name for p in pages if "{% block title %}" not in p.read_text() and "block head_title" not in p.read_text()
    ] == []


def test_the_image_page_title_is_plain_text(client, owner, upload):
    client.force_login(owner)
    image = upload(owner).image
    html = client.get(reverse("gallery:image_detail", args=[image.pk])).content.decode()
    assert "<" not in re.search(r"<title>(.*?)</title>", html, re.S).group(1)


def test_form_errors_are_announced_and_mark_the_field(client, db):
    page = client.post(reverse("signup"), {"username": "ad min", "password1": "x", "password2": "y"}).content.decode()
    assert 'class="errorlist" role="alert"' in page
    assert 'aria-invalid="true"' in page
