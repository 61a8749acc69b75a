"""Image bytes go through Django's storage API: the app works on a store that is not this disk.

Django's InMemoryStorage stands in for an object store (S3 through django-storages): if any code
still built a path under MEDIA_ROOT, these flows would fail or leave files there.
"""

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from rest_framework.test import APIClient

from gallery.models import Image
from gallery.services import image_delete, thumbnail_name
from search.queries import BoxQuery
from search.query import search
from tests import images
from tests.conftest import upload_file


@pytest.fixture
def object_store(settings):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    yield default_storage
    assert not settings.MEDIA_ROOT.exists(), "something wrote to MEDIA_ROOT behind the storage's back"


def test_upload_processing_serving_search_and_delete_work_on_an_object_store(
    owner, object_store, colour_proposer, django_capture_on_commit_callbacks
):
    api = APIClient()
    api.force_authenticate(owner)
    with django_capture_on_commit_callbacks(execute=True):  # the worker reads the originals from the store
        response = api.post(
            reverse("api:images"),
            {"files": [upload_file(images.png(seed=3), "scene.png"), upload_file(images.png(seed=4), "other.png")]},
            format="multipart",
        )
    assert response.status_code == 201
    image, other = Image.objects.get(original_name="scene.png"), Image.objects.get(original_name="other.png")
    assert image.status == "ready" and image.regions.filter(kind="global").count() == 1
    assert object_store.exists(image.file)

    original = api.get(reverse("api:image_file", args=[image.pk]))
    assert original.status_code == 200 and b"".join(original.streaming_content) == images.png(seed=3)
    thumbnail = api.get(reverse("api:image_thumbnail", args=[image.pk]))
    assert thumbnail.status_code == 200 and object_store.exists(thumbnail_name(image))

    # A box query crops the stored original: read from the store too.
    page = search(user=owner, query=BoxQuery(image_id=image.pk, box=(0, 0, image.width, image.height)), min_score=-1)
    assert [result.image.pk for result in page.results] == [other.pk]

    with django_capture_on_commit_callbacks(execute=True):
        image_delete(image=image)
    assert not object_store.exists(image.file) and not object_store.exists(thumbnail_name(image))
