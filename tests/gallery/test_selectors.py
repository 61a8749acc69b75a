"""The visibility rule has one owner, gallery.selectors, in two forms that must agree."""

import numpy as np
import pytest

from gallery.models import Image
from gallery.selectors import images_searchable_by, searchable_image_mask


@pytest.mark.parametrize("scope", ["all", "mine", "public"])
def test_the_array_form_of_the_rule_agrees_with_the_queryset(owner, friend, stranger, scope):
    rng = np.random.default_rng(3)
    users = [owner, friend, stranger]
    for number in range(40):
        Image.objects.create(
            owner=users[number % 3],
            file=f"originals/{number}.png",
            original_name=f"{number}.png",
            sha256=f"{number:064d}",
            format="PNG",
            width=1,
            height=1,
            size_bytes=1,
            is_public=bool(rng.random() < 0.4),
            status=rng.choice(Image.Status.values),
        )
    rows = list(Image.objects.values_list("pk", "owner_id", "is_public", "status"))
    size = max(row[0] for row in rows) + 1
    owner_of, public, ready = np.full(size, -1), np.zeros(size, bool), np.zeros(size, bool)
    for pk, owner_id, is_public, status in rows:
        owner_of[pk], public[pk], ready[pk] = owner_id, is_public, status == Image.Status.READY
    for user in users:
        in_database = set(images_searchable_by(user, scope).values_list("pk", flat=True))
        in_arrays = set(
            np.flatnonzero(
                searchable_image_mask(owner=owner_of, public=public, ready=ready, user_id=user.pk, scope=scope)
            ).tolist()
        )
        assert in_arrays == in_database and in_database
    assert not searchable_image_mask(owner=owner_of, public=public, ready=ready, user_id=None).any()
