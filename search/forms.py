from django import forms

from gallery.selectors import albums_visible_to, images_visible_to
from search.query import MATCH_KINDS, MAX_WEIGHT, SCOPES, Filters, SearchError, VectorQuery, query_from

# The camera filter lists at most this many models (A to Z): a menu, not a catalogue.
MAX_CAMERA_CHOICES = 50


class SearchForm(forms.Form):
    q = forms.CharField(required=False, label="Search for", strip=True)
    image = forms.FileField(required=False, label="…or find photos like this one")
    similar = forms.IntegerField(required=False, widget=forms.HiddenInput)
    region = forms.IntegerField(required=False, widget=forms.HiddenInput)
    box_image = forms.IntegerField(required=False, widget=forms.HiddenInput)
    box = forms.CharField(required=False, widget=forms.HiddenInput)
    image_weight = forms.FloatField(required=False, min_value=0.1, max_value=MAX_WEIGHT, label="Photo against words")
    exclude_weight = forms.FloatField(required=False, min_value=0.1, max_value=MAX_WEIGHT, label="How hard to leave out “-words”")
    scope = forms.ChoiceField(
        required=False, label="Whose", choices=list(zip(SCOPES, ["Everything I may see", "My images", "Public images"]))
    )
    kind = forms.ChoiceField(
        required=False, label="Match", choices=list(zip(MATCH_KINDS, ["Whole images and objects", "Whole images", "Objects"]))
    )
    taken_from = forms.DateField(required=False, label="Taken from", widget=forms.DateInput(attrs={"type": "date"}))
    taken_to = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}))
    album = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Album")
    camera = forms.ChoiceField(required=False, label="Camera")
    favourites = forms.BooleanField(required=False, label="Favourites only")
    tag = forms.CharField(required=False, max_length=64, label="Tagged")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["album"].choices = [("", "Any album")] + [
            (album.pk, album.name) for album in albums_visible_to(user).order_by("name")]
        cameras = (images_visible_to(user).exclude(camera="").values_list("camera", flat=True)
                   .distinct().order_by("camera")[:MAX_CAMERA_CHOICES])
        self.fields["camera"].choices = [("", "Any camera")] + [(camera, camera) for camera in cameras]

    def filters(self) -> Filters:
        data = self.cleaned_data
        return Filters(taken_from=data.get("taken_from"), taken_to=data.get("taken_to"), album_id=data.get("album"),
                       camera=data.get("camera") or "", favourites=bool(data.get("favourites")), tag=data.get("tag") or "")

    @property
    def has_filters(self) -> bool:
        return self.is_bound and self.is_valid() and bool(self.filters())

    def query(self, *, uploaded: bytes | None = None, stored: VectorQuery | None = None):
        """The query the (valid) form asks for; `uploaded`: the photo file's bytes; `stored`: the vector of
        a saved or recent search by a photo. Raises SearchError naming what to change."""
        data = self.cleaned_data
        photos = [uploaded, data.get("similar"), data.get("box_image"), data.get("region"), stored]
        if not data.get("q") and not any(photos):
            raise SearchError("Type a few words, choose a photo, or use “more like this” on an image.")
        if sum(1 for thing in photos if thing) > 1 or (data.get("box") and not data.get("box_image")):
            raise SearchError("Search with one photo at a time: a photo, more like this, or a box on a photo.")
        return query_from(text=data.get("q"), image=uploaded, image_id=data.get("similar") or data.get("box_image"),
                          region_id=data.get("region"), box=data.get("box"), stored=stored,
                          image_weight=data.get("image_weight") or 1.0, exclude_weight=data.get("exclude_weight") or 1.0)

    def search_options(self) -> dict:
        """scope, kind and filters for search.query.search."""
        data = self.cleaned_data
        return {"scope": data.get("scope") or "all", "kind": data.get("kind") or "both", "filters": self.filters()}
