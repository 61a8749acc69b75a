"""Places: GPS positions named offline (gallery/places.py) by the first stage of processing, the
Places page, the place filter on timelines, in search and in the API, and place names found by text
search; a photo's place as private as its position."""

import importlib
import json
import os
import re
import subprocess
import sys

import pytest
from django.apps import apps
from django.urls import reverse
from rest_framework.test import APIClient

from gallery.models import Image
from gallery.places import Place, place_at
from gallery.services import image_set_location_sharing, image_set_visibility
from search.queries import TextQuery
from search.query import Filters, search
from tests import images
from tests.gallery.test_timeline import names_in

PARIS = ((48, 51, 11), "N", (2, 20, 59), "E")  # by Notre-Dame
MONTMARTRE = ((48, 53, 12), "N", (2, 20, 35), "E")
BELLAGIO = ((45, 59, 14), "N", (9, 15, 42), "E")  # a small town on Lake Como, 45 km from Monza
AT_SEA = ((0, 0, 0), "N", (30, 0, 0), "W")  # the middle of the Atlantic

PARIS_NAME = "Paris, Île-de-France, France"


@pytest.mark.parametrize(
    ("position", "named"),
    [
        ((48.853, 2.3499), PARIS_NAME),
        ((48.8867, 2.3431), PARIS_NAME),  # Montmartre: GeoNames' nearest point is a neighbourhood
        ((52.4986, 13.4033), "Berlin, State of Berlin, Germany"),  # Kreuzberg, a district of 150,000
        ((35.6595, 139.7005), "Tokyo, Japan"),  # Shibuya; region and town the same, said once
        ((45.9871, 9.2616), "Bellagio, Lombardy, Italy"),  # a small town stays itself
        ((46.0207, 7.7491), "Zermatt, Valais, Switzerland"),
        ((-37.81, 144.96), "Melbourne, Victoria, Australia"),
    ],
)
def test_positions_are_named_as_a_person_would(position, named):
    assert str(place_at(*position)) == named


@pytest.mark.parametrize("position", [(0.0, -30.0), (23.4, 10.0), (None, 2.0), (91.0, 0.0)])
def test_far_from_any_town_or_without_a_position_there_is_no_place(position):
    assert place_at(*position) is None  # mid-Atlantic; the Sahara, 140 km from Djanet; none; impossible


@pytest.fixture
def trip(owner, upload):
    """Three photos in Paris (one at Montmartre), one at Bellagio, one at sea, one without GPS."""
    made = {}
    for seed, (name, gps) in enumerate(
        [
            ("notre-dame.jpg", PARIS),
            ("montmartre.jpg", MONTMARTRE),
            ("bellagio.jpg", BELLAGIO),
            ("atlantic.jpg", AT_SEA),
            ("home.jpg", None),
        ]
    ):
        made[name] = upload(owner, images.camera_jpeg(seed=seed, gps=gps), name=name).image
    return made


def test_the_first_stage_names_the_place_and_the_photo_page_and_api_show_it(client, owner, trip):
    for image in trip.values():
        image.refresh_from_db()
        assert image.status == Image.Status.READY
    assert trip["notre-dame.jpg"].place == Place("Paris", "Île-de-France", "France")
    assert trip["montmartre.jpg"].place == trip["notre-dame.jpg"].place
    assert str(trip["bellagio.jpg"].place) == "Bellagio, Lombardy, Italy"
    assert trip["atlantic.jpg"].place is None and trip["atlantic.jpg"].latitude == pytest.approx(0.0)
    assert trip["home.jpg"].place is None

    client.force_login(owner)
    page = client.get(reverse("gallery:image_detail", args=[trip["notre-dame.jpg"].pk])).content.decode()
    assert f">{PARIS_NAME}</a> (48.85306, 2.34972)" in page
    api = APIClient()
    api.force_authenticate(owner)
    shown = api.get(reverse("api:image", args=[trip["notre-dame.jpg"].pk])).json()
    assert shown["place"] == {"name": PARIS_NAME, "city": "Paris", "region": "Île-de-France", "country": "France"}
    assert api.get(reverse("api:image", args=[trip["atlantic.jpg"].pk])).json()["place"] is None


def test_the_places_page_groups_ones_photos_and_opens_the_timeline_at_a_place(client, owner, stranger, upload, trip):
    theirs = upload(stranger, images.camera_jpeg(seed=9, gps=BELLAGIO), name="theirs.jpg").image
    image_set_visibility(image=theirs, is_public=True)
    image_set_location_sharing(image=theirs, share_location=True)  # shared, but not one's own photo
    client.force_login(owner)
    page = client.get(reverse("gallery:places")).content.decode()
    assert page.index(">France<") < page.index(">Paris<") < page.index(">Italy<") < page.index(">Bellagio<")
    assert "Île-de-France · 2 photos" in page and "Lombardy · 1 photo<" in page
    assert "1 photo with a position far from any town" in page  # the one at sea
    link = reverse("gallery:my_images") + "?place=Paris%2C%20%C3%8Ele-de-France%2C%20France"
    assert link in page
    paris = client.get(link).content.decode()
    assert sorted(names_in(paris)) == ["montmartre.jpg", "notre-dame.jpg"]
    assert f"Taken in <strong>{PARIS_NAME}</strong>" in paris
    # A country, any letter case; and the filter stays on through the other filters.
    assert names_in(client.get(reverse("gallery:my_images"), {"place": "italy"}).content.decode()) == ["bellagio.jpg"]
    assert 'name="place" value="Italy"' in client.get(reverse("gallery:my_images"), {"place": "Italy"}).content.decode()


def test_nobody_learns_where_anothers_photo_was_taken_unless_they_share_it(client, owner, stranger, upload):
    theirs = upload(stranger, images.camera_jpeg(seed=11, gps=PARIS), name="theirs.jpg").image
    image_set_visibility(image=theirs, is_public=True)
    client.force_login(owner)

    def found() -> dict[str, bool]:
        public = client.get(reverse("gallery:public_images"), {"place": "Paris"}).content.decode()
        by_text = search(user=owner, query=TextQuery("Paris"), min_score=-1).results
        filtered = search(user=owner, query=TextQuery("a photo"), min_score=-1, filters=Filters(place="France"))
        page = client.get(reverse("gallery:image_detail", args=[theirs.pk])).content.decode()
        return {
            "public timeline": "theirs.jpg" in names_in(public),
            "text search": any(r.image == theirs and r.kind == "place" for r in by_text),
            "search filter": theirs in [r.image for r in filtered.results],
            "photo page": PARIS_NAME in page,
            "search page": f"taken in {PARIS_NAME}"
            in client.get(reverse("search:search"), {"q": "Paris"}).content.decode(),
        }

    assert found() == dict.fromkeys(
        ["public timeline", "text search", "search filter", "photo page", "search page"], False
    )
    suggestions = '<datalist id="place-names">'
    page = client.get(reverse("search:search")).content.decode()
    assert "Paris" not in page[page.index(suggestions) :].split("</datalist>")[0]  # not even a suggestion
    image_set_location_sharing(image=theirs, share_location=True)
    assert found() == dict.fromkeys(
        ["public timeline", "text search", "search filter", "photo page", "search page"], True
    )
    page = client.get(reverse("search:search")).content.decode()
    assert '<option value="Paris, France">' in page[page.index(suggestions) :]


def test_a_place_name_searched_for_finds_the_photos_taken_there_first(owner, trip):
    page = search(user=owner, query=TextQuery("paris"), min_score=-1).results
    first = page[:2]
    assert {r.image.original_name for r in first} == {"notre-dame.jpg", "montmartre.jpg"}
    assert {r.kind for r in first} == {"place"} and "place" not in {r.kind for r in page[2:]}
    # Shown at the default threshold too, where a random-weight CLIP shows nothing for "paris".
    assert {r.image.original_name for r in search(user=owner, query=TextQuery("Paris, France")).results} >= {
        "notre-dame.jpg",
        "montmartre.jpg",
    }
    # Through the API, as a filter.
    api = APIClient()
    api.force_authenticate(owner)
    answer = api.post(reverse("api:search"), {"text": "a photo", "place": "Lombardy", "min_score": -1}, format="json")
    assert answer.status_code == 200, answer.content
    assert [r["original_name"] for r in answer.json()["results"]] == ["bellagio.jpg"]
    listed = api.get(reverse("api:images"), {"place": "Paris"}).json()["results"]
    assert sorted(r["original_name"] for r in listed) == ["montmartre.jpg", "notre-dame.jpg"]
    assert api.get(reverse("api:images"), {"place": "Paris\x00"}).status_code == 400


def test_photos_processed_before_places_existed_are_named_by_the_migration(owner, trip):
    Image.objects.update(place_city="", place_region="", place_country="")
    migration = importlib.import_module("gallery.migrations.0022_places")
    migration.name_places(apps, None)
    assert Image.objects.get(pk=trip["notre-dame.jpg"].pk).place == Place("Paris", "Île-de-France", "France")
    assert Image.objects.get(pk=trip["home.jpg"].pk).place is None


def test_explore_opens_ones_photos_by_place_and_by_what_they_show(client, owner, stranger, upload, trip):
    from gallery.tags import tag_add

    for name in ("notre-dame.jpg", "bellagio.jpg"):
        tag_add(image=trip[name], label="Holiday")
    theirs = upload(stranger, images.camera_jpeg(seed=12, gps=PARIS), name="theirs.jpg").image
    image_set_visibility(image=theirs, is_public=True)
    image_set_location_sharing(image=theirs, share_location=True)
    tag_add(image=theirs, label="secret thing")
    client.force_login(owner)
    page = client.get(reverse("gallery:explore")).content.decode()
    # Places with most photos first (Paris 2, Bellagio 1; the stranger's third Paris photo is not one's own).
    assert page.index(">Paris<") < page.index(">Bellagio<") and "France · 2 photos" in page
    assert '<span class="name">holiday</span>' in page and "secret thing" not in page
    holiday = page[page.index('<span class="name">holiday</span>') :]
    assert holiday.index("2 photos") < holiday.index("</li>")
    link = reverse("gallery:my_images") + "?tag=holiday"
    assert link in page
    assert sorted(names_in(client.get(link).content.decode())) == ["bellagio.jpg", "notre-dame.jpg"]


def test_a_map_shows_only_with_a_tile_server_and_its_markers_are_ones_places(client, owner, settings, trip):
    client.force_login(owner)
    page = client.get(reverse("gallery:places")).content.decode()
    assert "data-map" not in page and "leaflet" not in page  # no tile server: no map, no request elsewhere
    settings.MAP_TILE_URL = "https://tiles.example.org/{z}/{x}/{y}.png"
    settings.MAP_ATTRIBUTION = "© Example"
    page = client.get(reverse("gallery:places")).content.decode()
    assert 'data-tiles="https://tiles.example.org/{z}/{x}/{y}.png"' in page and "vendor/leaflet/leaflet.js" in page
    markers = json.loads(re.search(r'<script id="place-markers" type="application/json">(.*?)</script>', page).group(1))
    assert [(m["name"], m["count"]) for m in markers] == [(PARIS_NAME, 2), ("Bellagio, Lombardy, Italy", 1)]
    paris = markers[0]
    assert paris["lat"] == pytest.approx((48.85306 + 48.88667) / 2, abs=1e-4)  # the mean of its two photos
    assert paris["url"] == reverse("gallery:my_images") + "?place=Paris%2C+%C3%8Ele-de-France%2C+France"
    photo = client.get(reverse("gallery:image_detail", args=[trip["notre-dame.jpg"].pk])).content.decode()
    assert 'id="photo-position"' in photo
    home = client.get(reverse("gallery:image_detail", args=[trip["home.jpg"].pk])).content.decode()
    assert "data-map" not in home  # no position, no map


def test_a_tile_server_is_allowed_by_the_content_security_policy_and_a_bad_template_refused():
    def start(url: str) -> subprocess.CompletedProcess:
        code = "import django; django.setup(); from django.conf import settings; print(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['img-src'])"
        environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "imgsearch.settings", "MAP_TILE_URL": url}
        return subprocess.run(
            [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=False
        )

    allowed = start("https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    assert allowed.returncode == 0, allowed.stderr
    assert "'https://tile.openstreetmap.org'" in allowed.stdout
    refused = start("https://tile.openstreetmap.org/tiles.png")
    assert refused.returncode != 0 and "MAP_TILE_URL is a tile URL template with {z}, {x} and {y}" in refused.stderr


def test_words_in_a_place_search_the_words_among_the_photos_taken_there(owner, stranger, upload, trip):
    theirs = upload(stranger, images.camera_jpeg(seed=13, gps=PARIS), name="theirs.jpg").image
    image_set_visibility(image=theirs, is_public=True)  # their location is not shared

    def names(text: str) -> set[str]:
        return {r.image.original_name for r in search(user=owner, query=TextQuery(text), min_score=-1).results}

    everything = names("a photo")
    assert {"notre-dame.jpg", "bellagio.jpg", "theirs.jpg"} <= everything
    assert names("a photo in Paris") == {"notre-dame.jpg", "montmartre.jpg"}
    assert names("a photo taken at lombardy") == {"bellagio.jpg"}
    assert names("a cat in a box in italy") == {"bellagio.jpg"}  # the last "in" names the place
    assert names("a photo in a box") == everything  # no place: all words are CLIP's
    assert names("a photo in Atlantis") == everything
    image_set_location_sharing(image=theirs, share_location=True)
    assert names("a photo in Paris") == {"notre-dame.jpg", "montmartre.jpg", "theirs.jpg"}
    # A place filter already set wins: the words are then all CLIP's, among the photos it leaves.
    filtered = search(user=owner, query=TextQuery("a photo in Paris"), min_score=-1, filters=Filters(place="Italy"))
    assert {r.image.original_name for r in filtered.results} == {"bellagio.jpg"}


def test_each_place_is_covered_by_its_newest_photo_in_one_query(owner, trip, django_assert_num_queries):
    """places_of read each place's cover with a query of its own (one per place)."""
    from gallery.models import Image
    from gallery.places import places_of

    with django_assert_num_queries(1):
        groups = places_of(Image.objects.filter(owner=owner))
    covers = {group.place.city: group.cover_id for group in groups}
    newest_in_paris = Image.objects.filter(owner=owner, place_city="Paris").order_by("-shot_local", "-pk").first()
    assert covers == {"Paris": newest_in_paris.pk, "Bellagio": trip["bellagio.jpg"].pk}
