"""Recent searches (suggestions), saved searches and what is new in them, with privacy between people."""

import pytest
from django.urls import reverse

from search.models import RecentSearch, SavedSearch
from tests import images
from tests.conftest import upload_file


@pytest.fixture
def photos(owner, stranger, upload, colour_proposer, settings):
    settings.MIN_SIMILARITY = settings.MIN_IMAGE_SIMILARITY = -1  # tiny random models: every photo matches
    return [upload(owner, images.png(seed=seed), name=f"photo-{seed}.png").image for seed in range(2)]


def run(client, **params):
    response = client.get(reverse("search:search"), params)
    return response, response.content.decode()


def test_searches_are_remembered_once_and_suggested_only_to_their_owner(client, owner, stranger, photos):
    client.force_login(owner)
    run(client, q="a red circle")
    run(client, q="a red circle")  # the same again moves to the top, not twice
    run(client, q="a blue square", scope="mine")
    assert [(r.params, r.description) for r in RecentSearch.objects.filter(owner=owner)] == [
        ({"q": "a blue square", "scope": "mine"}, "“a blue square”"),
        ({"q": "a red circle"}, "“a red circle”"),
    ]
    page = client.get(reverse("gallery:my_images")).content.decode()
    assert '<option value="a blue square">' in page and '<option value="a red circle">' in page
    search_page = client.get(reverse("search:search")).content.decode()
    assert "Recent searches" in search_page and "?q=a+blue+square&amp;scope=mine" in search_page
    client.force_login(stranger)
    assert "a red circle" not in client.get(reverse("gallery:my_images")).content.decode()
    assert "a red circle" not in client.get(reverse("search:search")).content.decode()


def test_the_same_words_with_other_filters_are_one_recent_search_the_latest(client, owner, photos):
    """Each filter variant was kept apart under the same description: five of ten entries read
    "a red circle" (issue 30, bug 11)."""
    client.force_login(owner)
    run(client, q="a red circle")
    run(client, q="a blue square")
    run(client, q="a red circle", scope="mine")
    run(client, q="a red circle", scope="mine", kind="global")
    assert [(r.params, r.description) for r in RecentSearch.objects.filter(owner=owner)] == [
        ({"q": "a red circle", "scope": "mine", "kind": "global"}, "“a red circle”"),
        ({"q": "a blue square"}, "“a blue square”"),
    ]


def test_saving_under_the_offered_name_does_not_double_its_quotes(client, owner, photos):
    """The offered name is the description, “a red circle”, and the message quoted it again:
    'Saved ““a red circle””' (issue 30, bug 12)."""
    client.force_login(owner)
    _, page = run(client, q="a red circle")
    assert 'id="id_save_name" maxlength="100" value="a red circle"' in page
    recent = RecentSearch.objects.get(owner=owner)
    response = client.post(reverse("search:saved_create"), {"recent": recent.pk, "name": "“a red circle”"}, follow=True)
    assert SavedSearch.objects.get(owner=owner).name == "a red circle"
    assert "Saved “a red circle”." in response.content.decode()


def test_only_the_newest_searches_are_kept_and_they_can_be_cleared(client, owner, photos, settings):
    settings.RECENT_SEARCHES_KEPT = 3
    client.force_login(owner)
    for word in ("one", "two", "three", "four"):
        run(client, q=word)
    assert [r.params["q"] for r in RecentSearch.objects.filter(owner=owner)] == ["four", "three", "two"]
    client.post(reverse("search:recent_clear"))
    assert not RecentSearch.objects.filter(owner=owner).exists()


def test_a_saved_search_marks_what_arrived_since_it_was_last_opened(client, owner, photos, upload):
    client.force_login(owner)
    _, page = run(client, q="a red circle", kind="global")
    recent = RecentSearch.objects.get(owner=owner)
    assert "Save this search as" in page
    client.post(reverse("search:saved_create"), {"recent": recent.pk, "name": "red things"})
    saved = SavedSearch.objects.get(owner=owner)
    assert (saved.name, saved.params) == ("red things", {"q": "a red circle", "kind": "global"})
    assert "nothing new" in client.get(reverse("search:saved_list")).content.decode()

    fresh = upload(owner, images.png(seed=7), name="fresh.png").image
    listing = client.get(reverse("search:saved_list")).content.decode()
    assert "1 new" in listing and saved.get_absolute_url().replace("&", "&amp;") in listing
    _, opened = run(client, **saved.params, saved=saved.pk)
    card = opened.split(f'value="{fresh.pk}"')[1].split("</li>")[0]
    assert 'class="badge new">New' in card and "1 new since you last opened it" in opened
    assert opened.count('class="badge new">New') == 1
    _, again = run(client, **saved.params, saved=saved.pk)
    assert "badge new" not in again  # seen now
    response = client.post(
        reverse("search:saved_create"),
        {"recent": RecentSearch.objects.filter(owner=owner).first().pk, "name": "red things"},
        follow=True,
    )
    assert "already have a saved search named" in response.content.decode()


def test_a_search_by_an_uploaded_photo_is_kept_as_its_vector_and_runs_again(client, owner, photos, settings):
    client.force_login(owner)
    response = client.post(reverse("search:search"), {"image": upload_file(images.png(seed=1), "query.png")})
    first = response.content.decode()
    recent = RecentSearch.objects.get(owner=owner)
    assert recent.by_photo and len(recent.query_vector()) > 0 and recent.embedding_model
    _, again = run(client, recent=recent.pk)
    names = lambda page: [part.split('"')[0] for part in page.split('alt="')[1:] if part.startswith("photo-")]  # noqa: E731
    assert names(again) == names(first) and names(first)
    assert RecentSearch.objects.filter(owner=owner).count() == 1  # the same photo again: not twice
    client.post(reverse("search:saved_create"), {"recent": recent.pk, "name": "like query.png"})
    saved = SavedSearch.objects.get(owner=owner)
    assert saved.by_photo and saved.get_absolute_url().endswith(f"?saved={saved.pk}")
    SavedSearch.objects.filter(pk=saved.pk).update(embedding_model="another-model")
    response, page = run(client, saved=saved.pk)
    assert response.status_code == 400 and "made with another model" in page


def test_another_persons_saved_and_recent_searches_are_out_of_reach(client, owner, stranger, photos):
    client.force_login(owner)
    run(client, q="a secret thing")
    recent = RecentSearch.objects.get(owner=owner)
    client.post(reverse("search:saved_create"), {"recent": recent.pk, "name": "mine"})
    saved = SavedSearch.objects.get(owner=owner)
    client.force_login(stranger)
    response, page = run(client, saved=saved.pk)
    assert response.status_code == 400 and "No such saved search" in page and "a secret thing" not in page
    response, page = run(client, recent=recent.pk)
    assert response.status_code == 400 and "No such recent search" in page
    client.post(reverse("search:saved_create"), {"recent": recent.pk, "name": "stolen"})
    assert not SavedSearch.objects.filter(owner=stranger).exists()
    assert client.post(reverse("search:saved_delete", args=[saved.pk])).status_code == 404
    assert "mine" not in client.get(reverse("search:saved_list")).content.decode().split("<main")[1]
    client.post(reverse("search:recent_clear"))
    assert RecentSearch.objects.filter(owner=owner).count() == 1 and SavedSearch.objects.filter(owner=owner).exists()


def api_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_saves_opens_lists_and_deletes_searches_of_every_kind(owner, stranger, photos, upload):
    api = api_for(owner)
    made = api.post(
        reverse("api:saved_searches"),
        {
            "name": "near photo 0",
            "text": "red -blue",
            "image_id": photos[0].pk,
            "image_weight": 2,
            "kind": "global",
            "favourites": False,
        },
        format="json",
    )
    assert made.status_code == 201, made.json()
    # The search page's parameters, defaults left out (scope "all"): opening it is opening that URL.
    assert made.json()["params"] == {
        "q": "red -blue",
        "similar": str(photos[0].pk),
        "image_weight": "2",
        "kind": "global",
    }
    assert made.json()["description"] == "“red” + more like this photo (weight 2) − “blue”"
    box = api.post(
        reverse("api:saved_searches"), {"name": "a box", "image_id": photos[0].pk, "box": [1, 2, 30, 40]}, format="json"
    )
    assert box.json()["params"]["box"] == "1,2,30,40" and box.json()["params"]["box_image"] == str(photos[0].pk)
    by_photo = api.post(
        reverse("api:saved_searches"),
        {"name": "like this file", "image": upload_file(images.png(seed=1), "q.png")},
        format="multipart",
    )
    assert by_photo.status_code == 201 and by_photo.json()["by_photo"] is True
    refused = api.post(reverse("api:saved_searches"), {"name": "x", "image_id": 10**9}, format="json")
    assert refused.status_code == 400 and refused.json()["detail"] == "No such image."

    fresh = upload(owner, images.png(seed=9), name="fresh.png").image
    listed = {item["name"]: item for item in api.get(reverse("api:saved_searches")).json()}
    assert set(listed) == {"near photo 0", "a box", "like this file"} and listed["like this file"]["new_matches"] == 1
    opened = api.get(reverse("api:saved_search", args=[by_photo.json()["id"]])).json()
    assert opened["new"] == [fresh.pk] and fresh.pk in [r["image_id"] for r in opened["results"]]
    assert opened["query"]["positive"] == [{"kind": "image", "weight": 1.0}]
    assert api.get(reverse("api:saved_search", args=[by_photo.json()["id"]])).json()["new"] == []

    other = api_for(stranger)
    assert other.get(reverse("api:saved_searches")).json() == []
    assert other.get(reverse("api:saved_search", args=[made.json()["id"]])).status_code == 404
    assert other.delete(reverse("api:saved_search", args=[made.json()["id"]])).status_code == 404
    assert api.delete(reverse("api:saved_search", args=[made.json()["id"]])).status_code == 204
    assert len(api.get(reverse("api:saved_searches")).json()) == 2


def test_a_saved_search_whose_photo_is_gone_answers_409_with_why_and_is_still_listed(owner, photos):
    api = api_for(owner)
    saved = api.post(reverse("api:saved_searches"), {"name": "like it", "image_id": photos[0].pk}, format="json")
    assert saved.status_code == 201
    assert api.delete(reverse("api:image", args=[photos[0].pk])).status_code == 204
    opened = api.get(reverse("api:saved_search", args=[saved.json()["id"]]))
    # Before, a 400, as if the client had sent something wrong.
    assert opened.status_code == 409 and opened.json()["detail"] == "No such image."
    (listed,) = api.get(reverse("api:saved_searches")).json()
    assert listed["problem"] == "No such image." and listed["new_matches"] is None


def test_the_api_lists_and_clears_only_your_recent_searches(client, owner, stranger, photos):
    client.force_login(owner)
    run(client, q="a red circle")
    assert [r["description"] for r in api_for(owner).get(reverse("api:recent_searches")).json()] == ["“a red circle”"]
    assert api_for(stranger).get(reverse("api:recent_searches")).json() == []
    assert api_for(stranger).delete(reverse("api:recent_searches")).status_code == 204
    assert RecentSearch.objects.filter(owner=owner).count() == 1
    assert api_for(owner).delete(reverse("api:recent_searches")).status_code == 204
    assert not RecentSearch.objects.exists()


def test_anonymous_visitors_reach_no_saved_or_recent_searches(client, owner, photos):
    from rest_framework.test import APIClient

    for name in ("api:saved_searches", "api:recent_searches"):
        assert APIClient().get(reverse(name)).status_code in (401, 403)
    assert APIClient().get(reverse("api:saved_search", args=[1])).status_code in (401, 403)
    for name in ("search:saved_list", "search:duplicates"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post(reverse("search:recent_clear")).status_code == 302
