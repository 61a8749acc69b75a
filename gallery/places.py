"""Where a photo was taken, in words: its GPS position -> town, region and country, offline.

The names come from GeoNames' places of 1,000 people or more, as reverse_geocode bundles them
(about 150,000 points, no network; loaded once per process, about 2 s and 100 MB). The lookup is by
nearest point, not by boundary, so two rules make its answer what a person would say:

- in a city's neighbourhood the city is named, not the neighbourhood GeoNames lists as a place of
  its own: a place of a million people within 15 km, else one of 100,000 within 10 km, else the
  nearest place (CITIES; Montmartre -> Paris, Shibuya -> Tokyo, Kreuzberg -> Berlin; Bellagio
  stays Bellagio, 45 km from Monza);
- far from any town (at sea, in a desert) there is no name: the nearest place is over FAR_KM away.

The first stage of processing names the place (search.ingest); a photo's place is as private as its
coordinates: its owner's, and others' only where the owner shares the location
(Image.location_visible_to; `images_at` keeps to that).
"""

import math
from dataclasses import dataclass

from django.db.models import Avg, Count, OuterRef, Q, QuerySet, Subquery

# (population, km): the first tier with a place that big that near names the place.
CITIES = ((1_000_000, 15.0), (100_000, 10.0))
FAR_KM = 50.0
EARTH_KM = 6371.0
# Place names are stored in fields of this length (gallery.Image.place_*); a place filter names
# up to three of them, with commas between.
NAME_LENGTH = 200
NAME_CHARS = 3 * NAME_LENGTH + 4


@dataclass(frozen=True)
class Place:
    city: str
    region: str = ""
    country: str = ""

    def __str__(self) -> str:
        """'Paris, Île-de-France, France' (a part missing, or the same as the one before, left out)."""
        parts: list[str] = []
        for part in (self.city, self.region, self.country):
            if part and part not in parts:
                parts.append(part)
        return ", ".join(parts)

    def as_fields(self) -> dict[str, str]:
        return {"place_city": self.city, "place_region": self.region, "place_country": self.country}


NOWHERE = {"place_city": "", "place_region": "", "place_country": ""}


def place_at(latitude: float | None, longitude: float | None) -> Place | None:
    """The place a position is in or near, or None (no position, or far from every town)."""
    if latitude is None or longitude is None or not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    import reverse_geocode  # its data loads on first use: only processes that name places pay for it

    here = (latitude, longitude)
    nearest = reverse_geocode.get(here)
    if _km(here, nearest) > FAR_KM:
        return None
    chosen = nearest
    for population, km in CITIES:
        city = reverse_geocode.get(here, min_population=population)
        if _km(here, city) <= km:
            chosen = city
            break
    return Place(
        city=chosen["city"][:NAME_LENGTH],
        region=(chosen.get("state") or "")[:NAME_LENGTH],
        country=(chosen.get("country") or "")[:NAME_LENGTH],
    )


def fields_at(latitude: float | None, longitude: float | None) -> dict[str, str]:
    """Image's place fields for a position (blank where there is no place)."""
    place = place_at(latitude, longitude)
    return place.as_fields() if place else dict(NOWHERE)


def _km(here: tuple[float, float], there: dict) -> float:
    """Great-circle distance (haversine) to a reverse_geocode answer."""
    lat1, lon1 = map(math.radians, here)
    lat2, lon2 = math.radians(there["latitude"]), math.radians(there["longitude"])
    a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def location_shown_to(images: QuerySet, viewer) -> QuerySet:
    """Those of `images` whose location `viewer` may know: their own, or shared by the owner."""
    if not getattr(viewer, "is_authenticated", False):
        return images.filter(share_location=True)
    return images.filter(Q(owner=viewer) | Q(share_location=True))


def images_at(images: QuerySet, name: str, viewer) -> QuerySet:
    """Those of `images` taken at the place `name` says, as far as `viewer` may know where they were
    taken. `name` is a place's name ("Paris"), or several parts of one separated by commas, in any
    order ("Paris, France", as Places links say it); each part must be the town, region or country.
    Letter case does not matter."""
    parts = [part.strip() for part in name.split(",") if part.strip()]
    if not parts or "\x00" in name or len(name) > NAME_CHARS:  # names nothing (and PostgreSQL refuses NUL)
        return images.none()
    images = location_shown_to(images, viewer)
    for part in parts:
        images = images.filter(
            Q(place_city__iexact=part) | Q(place_region__iexact=part) | Q(place_country__iexact=part)
        )
    return images


def place_names(images: QuerySet, viewer, limit: int = 200) -> list[str]:
    """Names of the places `viewer` may know these photos were taken at, most photos first: towns as
    "Town, Country", then regions and countries (suggestions for a place filter)."""
    shown = location_shown_to(images, viewer).exclude(place_city="")
    names: list[str] = []
    for fields, name in (
        (("place_city", "place_country"), lambda row: str(Place(row[0], "", row[1]))),
        (("place_region",), lambda row: row[0]),
        (("place_country",), lambda row: row[0]),
    ):
        rows = shown.exclude(**{fields[0]: ""}).values_list(*fields).annotate(n=Count("pk")).order_by("-n", *fields)
        for row in rows[:limit]:
            if (text := name(row)) not in names:
                names.append(text)
    return names[:limit]


@dataclass(frozen=True)
class PlaceGroup:
    place: Place
    count: int
    cover_id: int  # the newest photo taken there
    latitude: float  # the mean position of its photos: where a map puts it
    longitude: float


def places_of(images: QuerySet) -> list[PlaceGroup]:
    """The places these photos were taken at, by country then town, each with its count and cover."""
    newest = images.filter(
        place_city=OuterRef("place_city"),
        place_region=OuterRef("place_region"),
        place_country=OuterRef("place_country"),
    ).order_by("-shot_local", "-pk")
    rows = (
        images.exclude(place_city="")
        .values("place_country", "place_region", "place_city")
        .annotate(
            count=Count("pk"),
            latitude=Avg("latitude"),
            longitude=Avg("longitude"),
            cover_id=Subquery(newest.values("pk")[:1]),  # one query for every place's cover
        )
        .order_by("place_country", "place_city", "place_region")
    )
    return [
        PlaceGroup(
            place=Place(city=row["place_city"], region=row["place_region"], country=row["place_country"]),
            count=row["count"],
            cover_id=row["cover_id"],
            latitude=row["latitude"],
            longitude=row["longitude"],
        )
        for row in rows
    ]
