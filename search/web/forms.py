"""The search page's form: the parameters of search.request.SearchParams, labelled and laid out
for the page, with the photo upload and the album and camera menus of the person searching."""

from django import forms

from gallery.places import place_names
from gallery.selectors import albums_visible_to, images_visible_to
from search.errors import SearchError
from search.queries import ImageQuery, VectorQuery
from search.query import MATCH_KINDS, SCOPES
from search.request import SearchParams, SearchRequest

# The camera filter lists at most this many models (A to Z): a menu, not a catalogue.
MAX_CAMERA_CHOICES = 50

LABELS = {
    "q": "Search for",
    "image_weight": "Photo against words",
    "exclude_weight": "How hard to leave out “-words”",
    "scope": "Whose",
    "kind": "Match",
    "taken_from": "Taken from",
    "taken_to": "to",
    "album": "Album",
    "camera": "Camera",
    "favourites": "Favourites only",
    "tag": "Tagged",
    "place": "Taken in",
}
HIDDEN = ("similar", "region", "box_image", "box")
DATES = ("taken_from", "taken_to")


class SearchForm(SearchParams):
    image = forms.FileField(required=False, label="…or find photos like this one")
    # Menus of what the person may choose from, where the parameters take any id or name.
    album = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    camera = forms.ChoiceField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in LABELS.items():
            self.fields[name].label = label
        for name in HIDDEN:
            self.fields[name].widget = forms.HiddenInput()
        for name in DATES:
            self.fields[name].widget = forms.DateInput(attrs={"type": "date"})
        self.fields["scope"].choices = list(
            zip(SCOPES, ["Everything I may see", "My images", "Public images"], strict=True)
        )
        self.fields["kind"].choices = list(
            zip(MATCH_KINDS, ["Whole images and objects", "Whole images", "Objects"], strict=True)
        )
        self.fields["album"].choices = [("", "Any album")] + [
            (album.pk, album.name) for album in albums_visible_to(user).order_by("name")
        ]
        cameras = (
            images_visible_to(user)
            .exclude(camera="")
            .values_list("camera", flat=True)
            .distinct()
            .order_by("camera")[:MAX_CAMERA_CHOICES]
        )
        self.fields["camera"].choices = [("", "Any camera")] + [(camera, camera) for camera in cameras]
        # Suggestions for the place field (any town, region or country may be typed).
        self.place_names = place_names(images_visible_to(user), user)

    @property
    def has_filters(self) -> bool:
        return self.is_bound and self.is_valid() and bool(self.filters())

    def search_request(self, *, uploaded: ImageQuery | None = None, stored: VectorQuery | None = None) -> SearchRequest:
        data = self.cleaned_data
        if not data.get("q") and not any(
            (uploaded, stored, data.get("similar"), data.get("box_image"), data.get("region"))
        ):
            raise SearchError("Type a few words, choose a photo, or use “more like this” on an image.")
        return super().search_request(uploaded=uploaded, stored=stored)
