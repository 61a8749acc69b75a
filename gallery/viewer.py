"""What the one photo viewer (templates/gallery/viewer.html, static/js/viewer.js) shows about a
photo, wherever it is opened: the photo page (from the timeline, search, favourites, places) and an
album's or a share link's viewer.

A person who may see the photo on their own account (it is theirs, or public) gets its object boxes,
"More like this", "Draw a box", tags and favourites as tools; through an album or a link alone (a
private photo of someone else's, or no account) they get the photo and its facts, nothing that would
search from it or say more than the album shows.
"""

from django.http import HttpRequest

from gallery import media, selectors, tags
from gallery.models import Image


def regions_of(image: Image) -> list[dict]:
    """The photo's regions for drawing boxes: the whole photo first, then objects by score."""
    regions = list(
        image.regions.order_by("kind", "-score").values("id", "kind", "x1", "y1", "x2", "y2", "score", "area_fraction")
    )
    for region in regions:
        region["box"] = [region["x1"], region["y1"], region["x2"], region["y2"]]
    return regions


def viewer_context(request: HttpRequest, image: Image) -> dict:
    user = request.user
    may_see = selectors.images_visible_to(user).filter(pk=image.pk).exists()
    is_owner = bool(user.is_authenticated and image.owner_id == user.pk)
    location_visible = image.location_visible_to(user)
    context: dict = {
        "image": image,
        "is_owner": is_owner,
        "may_see": may_see,
        "can_search": may_see and image.status == Image.Status.READY,
        "location_visible": location_visible,
        # Where it was taken, on a small map (with MAP_TILE_URL), for those who may know.
        "position": [{"lat": image.latitude, "lon": image.longitude, "name": str(image.place or "")}]
        if location_visible
        else [],
        "regions": regions_of(image) if may_see else [],
        # Zoomed, the viewer swaps the screen-sized preview for the original, where that has more.
        "zoom_shows_original": media.zoom_shows_original(image),
    }
    if may_see:
        context.update(
            chips=tags.image_chips(image),
            is_favourite=selectors.is_favourite(user, image),
            my_albums=selectors.albums_owned_by(user).order_by("name"),
            in_albums=selectors.albums_owned_by(user).filter(items__image=image).order_by("name"),
            # A private photo that the owner's shared albums still show: the page says so.
            shown_through=selectors.albums_showing_to_others(image) if is_owner and not image.is_public else [],
        )
    return context
