"""The timeline ("My images", "Public"): newest taken first, grouped by day, keyset pages, a date jump."""

import re

import pytest
from django.urls import reverse

from gallery import selectors
from gallery.models import Image
from tests import images


@pytest.fixture
def album_of_dates(owner, upload):
    """Photos taken on three days (EXIF), uploaded in another order, and one without a date."""
    taken = {
        "summer.jpg": "2024:07:14 18:30:05",
        "spring.jpg": "2023:04:02 09:00:00",
        "winter.jpg": "2024:12:24 20:00:00",
        "also-summer.jpg": "2024:07:14 08:00:00",
    }
    for seed, (name, when) in enumerate(taken.items()):
        upload(owner, images.camera_jpeg(seed=seed, taken=when, offset="+00:00"), name=name)
    upload(owner, images.png(seed=9), name="undated.png")  # falls back to its upload time: today
    return taken


def names_in(page: str) -> list[str]:
    return re.findall(r'<span class="name">([^<]+)</span>', page)


def test_my_images_are_in_order_taken_newest_first_whatever_the_upload_order(client, owner, album_of_dates):
    client.force_login(owner)
    page = client.get(reverse("gallery:my_images")).content.decode()
    assert names_in(page) == ["undated.png", "winter.jpg", "summer.jpg", "also-summer.jpg", "spring.jpg"]
    # One heading per day: both summer photos under Sunday 14 July 2024 (short, the full date on hover).
    assert page.count(">Sun 14 Jul 2024<") == 1 and 'title="Tuesday 24 December 2024">Tue 24 Dec 2024<' in page


def test_pages_continue_where_the_last_one_ended_even_after_new_uploads(
    client, owner, upload, album_of_dates, monkeypatch
):
    monkeypatch.setattr("gallery.views.PAGE_SIZE", 2)
    client.force_login(owner)
    first = client.get(reverse("gallery:my_images")).content.decode()
    assert names_in(first) == ["undated.png", "winter.jpg"]
    next_url = re.search(r'data-load-more href="([^"]+)"', first).group(1).replace("&amp;", "&")
    upload(owner, images.png(seed=20), name="newer.png")  # would shift an offset page by one
    second = client.get(reverse("gallery:my_images") + next_url + "&partial=1").content.decode()
    assert names_in(second) == ["summer.jpg", "also-summer.jpg"]
    assert "<h1>" not in second  # only the groups, for timeline.js to append
    third_url = re.search(r'data-load-more href="([^"]+)"', second).group(1).replace("&amp;", "&")
    third = client.get(reverse("gallery:my_images") + third_url).content.decode()
    assert names_in(third) == ["spring.jpg"] and "data-load-more" not in third


def test_a_month_jump_starts_at_that_months_newest_photo(client, owner, album_of_dates):
    client.force_login(owner)
    page = client.get(reverse("gallery:my_images")).content.decode()
    assert '<option value="2024-07">July 2024 (2)</option>' in page
    jumped = client.get(reverse("gallery:my_images"), {"month": "2024-07"}).content.decode()
    assert names_in(jumped) == ["summer.jpg", "also-summer.jpg", "spring.jpg"]
    assert "Back to the newest photos" in jumped
    nonsense = client.get(reverse("gallery:my_images"), {"month": "2024-13", "before": "x-y"}).content.decode()
    assert len(names_in(nonsense)) == 5  # a hand-edited URL starts at the top


def test_the_public_timeline_holds_only_public_photos(client, owner, friend, upload, album_of_dates):
    Image.objects.filter(original_name="summer.jpg").update(is_public=True)
    client.force_login(friend)
    page = client.get(reverse("gallery:public_images")).content.decode()
    assert names_in(page) == ["summer.jpg"]
    assert "July 2024 (1)" not in page  # one month only: no jump offered


def test_a_cursor_survives_its_round_trip_to_the_microsecond(owner, album_of_dates):
    image = Image.objects.get(original_name="summer.jpg")
    cursor = selectors.Cursor(image.shot_local, image.pk)
    assert selectors.Cursor.parse(str(cursor)) == cursor
    assert selectors.Cursor.parse("12-ab") is None and selectors.Cursor.parse("99999999999999999999-1") is None


def test_a_photo_shows_and_sits_on_the_day_and_time_its_camera_recorded(client, owner, upload, settings):
    """Taken 28 Sep 00:13 at +01:00: it showed "Taken 27 Sep 2025, 23:13" and sat under 27 September
    (the UTC instant, the server being on UTC). A person expects the camera's date and time."""
    from rest_framework.test import APIClient

    settings.TIME_ZONE = "UTC"
    london = upload(owner, images.camera_jpeg(seed=1, taken="2025:09:28 00:13:05", offset="+01:00"), "london.jpg").image
    # 17 minutes later as an instant, but the evening before by its camera's clock (in Iceland).
    reykjavik = upload(
        owner, images.camera_jpeg(seed=2, taken="2025:09:27 23:30:00", offset="+00:00"), "iceland.jpg"
    ).image
    client.force_login(owner)
    detail = client.get(reverse("gallery:image_detail", args=[london.pk])).content.decode()
    assert "<dt>Taken</dt><dd>28 Sep 2025, 00:13" in detail
    timeline = client.get(reverse("gallery:my_images")).content.decode()
    assert names_in(timeline) == ["london.jpg", "iceland.jpg"]  # by the cameras' clocks, newest first
    assert (
        timeline.index("Sunday 28 September 2025")
        < timeline.index("london.jpg")
        < timeline.index("Saturday 27 September 2025")
        < timeline.index("iceland.jpg")
    )
    api = APIClient()
    api.force_authenticate(owner)
    body = api.get(reverse("api:image", args=[london.pk])).json()
    assert body["taken_at_local"] == "2025-09-28T00:13:05+01:00" and body["taken_at"] == "2025-09-27T23:13:05Z"
    on_the_28th = api.post(
        reverse("api:search"), {"text": "photo", "taken_from": "2025-09-28", "min_score": -1}, format="json"
    )
    assert [result["image_id"] for result in on_the_28th.json()["results"]] == [london.pk]
    on_the_27th = api.post(
        reverse("api:search"), {"text": "photo", "taken_to": "2025-09-27", "min_score": -1}, format="json"
    )
    assert [result["image_id"] for result in on_the_27th.json()["results"]] == [reykjavik.pk]


def test_a_photo_without_an_offset_keeps_the_servers_time_zone(client, owner, upload, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    image = upload(owner, images.camera_jpeg(taken="2024:07:14 18:30:05", offset=None), "summer.jpg").image
    assert image.taken_offset_minutes is None and image.taken_local.isoformat() == "2024-07-14T18:30:05+02:00"
    client.force_login(owner)
    assert (
        "<dt>Taken</dt><dd>14 Jul 2024, 18:30"
        in client.get(reverse("gallery:image_detail", args=[image.pk])).content.decode()
    )


def test_on_this_day_shows_ones_own_photos_from_this_date_in_earlier_years(client, owner, stranger, upload):
    """Memories (issue 30): the photos taken on today's day and month in earlier years, a row a year,
    at the top of one's own timeline only; another person's photos never, public or not."""
    from django.utils import timezone

    from gallery.services import image_set_visibility

    today = timezone.localdate()
    if (today.month, today.day) == (2, 29):
        pytest.skip("29 February has earlier years only every fourth year")

    def taken(years_ago: int, month: int = today.month, day: int = today.day) -> str:
        return f"{today.year - years_ago}:{month:02d}:{day:02d} 23:30:00"

    other_day = 1 if today.day != 1 else 2
    for seed, (name, when) in enumerate(
        {
            "three-years-ago.jpg": taken(3),
            "one-year-ago.jpg": taken(1),
            "one-year-ago-too.jpg": taken(1).replace("23:30", "07:00"),
            "another-day.jpg": taken(1, day=other_day),
        }.items()
    ):
        upload(owner, images.camera_jpeg(seed=seed, taken=when, offset="-08:00"), name=name)
    theirs = upload(stranger, images.camera_jpeg(seed=7, taken=taken(2), offset="+00:00"), name="theirs.jpg").image
    image_set_visibility(image=theirs, is_public=True)

    client.force_login(owner)
    page = client.get(reverse("gallery:my_images")).content.decode()
    memories = page.split('<section class="memories"')[1].split("</section>")[0]
    years = re.findall(r"<h3>([^<]+)</h3>", memories)
    alts = re.findall(r'alt="([^"]+)"', memories)
    # 23:30 by the camera's clock in UTC-8 is the next day in UTC: the camera's date counts.
    assert years == ["1 year ago", "3 years ago"]
    assert alts == ["one-year-ago.jpg", "one-year-ago-too.jpg", "three-years-ago.jpg"]
    # Not on a filtered list, a jump into the past, the public timeline, or for anyone else.
    assert "On this day" not in client.get(reverse("gallery:my_images"), {"status": "ready"}).content.decode()
    assert "On this day" not in client.get(reverse("gallery:public_images")).content.decode()
    client.force_login(stranger)  # theirs alone
    page = client.get(reverse("gallery:my_images")).content.decode()
    assert re.findall(r'alt="([^"]+)"', page.split('<section class="memories"')[1].split("</section>")[0]) == [
        "theirs.jpg"
    ]
