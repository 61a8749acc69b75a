"""What a person keeps of their searches: saved searches (to see new matches later) and recent
searches (suggestions in the header search box). Both hold a search's parameters as the search
page's query string takes them (search.request.SearchRequest.to_params), so running one again is
opening its URL; nothing here holds a photo:
a search by an uploaded photo keeps its CLIP vector instead (the photo itself is never stored).

And what the near-duplicate pixel check found (search.duplicates.compare_with_neighbours)."""

import numpy as np
from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.http import urlencode


class SearchRecord(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    params = models.JSONField(default=dict, help_text="The search page's parameters (SearchRequest.to_params).")
    description = models.CharField(max_length=600, help_text="What was searched for, in words.")
    # A search by an uploaded photo: its vector, and the model that made it (another model cannot use it).
    vector = models.BinaryField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    @property
    def by_photo(self) -> bool:
        return self.vector is not None

    def query_vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vector), dtype=np.float32)


class SavedSearch(SearchRecord):
    name = models.CharField(max_length=100)
    # Matches that became searchable after this are "new" the next time the search is opened.
    last_viewed_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="saved_search_unique_name")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("search:search") + "?" + urlencode({**self.params, "saved": self.pk})


class RecentSearch(SearchRecord):
    """One search a person ran (page 1 of it). Only the newest RECENT_SEARCHES_KEPT are kept."""

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return self.description

    def get_absolute_url(self) -> str:
        return (
            reverse("search:search")
            + "?"
            + urlencode({**self.params, "recent": self.pk} if self.by_photo else self.params)
        )


class PixelCheck(models.Model):
    """A photo the background pixel check has compared with its owner's likely copies (its CLIP
    nearest and hash nearest); what it found are PixelVerdict rows."""

    image = models.OneToOneField(
        "gallery.Image", primary_key=True, on_delete=models.CASCADE, related_name="pixel_check"
    )
    checked_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"image {self.image_id} checked {self.checked_at:%Y-%m-%d %H:%M}"


class PixelVerdict(models.Model):
    """Two photos of one owner the pixel check could register: the same picture (one a crop,
    rescale or re-encode of the other), or not (another shot of the same place). first < second."""

    first = models.ForeignKey("gallery.Image", on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey("gallery.Image", on_delete=models.CASCADE, related_name="+")
    same = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["first", "second"], name="pixel_verdict_unique_pair"),
            models.CheckConstraint(condition=models.Q(first__lt=models.F("second")), name="pixel_verdict_ordered"),
        ]

    def __str__(self) -> str:
        return (
            f"images {self.first_id} and {self.second_id}: {'the same picture' if self.same else 'different pictures'}"
        )
