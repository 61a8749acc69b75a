"""The images API with token authentication, as a script would use it."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from gallery.models import ApiToken, Image, Region
from gallery.tokens import token_create
from tests import images
from tests.conftest import terminate_database_connection, upload_file


@pytest.fixture
def api(owner) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=owner, name='tests')[1]}")
    return client


def post_files(api, django_capture_on_commit_callbacks, *files):
    with django_capture_on_commit_callbacks(execute=True):
        return api.post(reverse("api:images"), {"files": list(files)}, format="multipart")


def test_a_token_can_be_obtained_with_username_and_password(owner):
    response = APIClient().post(
        reverse("api:token"), {"username": "owner", "password": "owner-pass-123"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert ApiToken.objects.get(user=owner).token_key == token[:15] == response.json()["key"]
    assert APIClient().get(reverse("api:images"), HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def test_wrong_credentials_get_a_readable_error(owner):
    response = APIClient().post(reverse("api:token"), {"username": "owner", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["detail"]


def test_upload_many_reports_each_file(api, django_capture_on_commit_callbacks):
    response = post_files(
        api,
        django_capture_on_commit_callbacks,
        upload_file(images.png(seed=1), "one.png"),
        upload_file(b"", "zero.png"),
    )
    assert response.status_code == 201
    body = response.json()
    assert [(item["name"], item["outcome"]) for item in body] == [("one.png", "accepted"), ("zero.png", "rejected")]
    # The answer is written before the task runs; the image is ready once it has.
    assert body[0]["image"]["status"] == "pending" and body[1]["image"] is None
    assert "empty" in body[1]["message"]
    assert Image.objects.get(pk=body[0]["image"]["id"]).status == "ready"


def test_upload_with_every_file_rejected_is_a_400(api, django_capture_on_commit_callbacks):
    response = post_files(api, django_capture_on_commit_callbacks, upload_file(images.SVG, "x.svg"))
    assert response.status_code == 400 and response.json()[0]["outcome"] == "rejected"


def test_upload_without_files_says_how_to_send_them(api):
    response = api.post(reverse("api:images"), {}, format="multipart")
    assert response.status_code == 400
    assert "files" in response.json()["detail"]


def test_json_instead_of_multipart_is_a_clear_error(api):
    response = api.post(reverse("api:images"), {"files": "x"}, format="json")
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]


def test_list_detail_patch_delete(api, owner, django_capture_on_commit_callbacks, settings):
    post_files(api, django_capture_on_commit_callbacks, upload_file(images.png(seed=3), "a.png"))
    listing = api.get(reverse("api:images")).json()
    assert listing["count"] == 1
    image_id = listing["results"][0]["id"]

    detail = api.get(reverse("api:image", args=[image_id])).json()
    assert detail["is_owner"] and detail["status"] == "ready"
    assert detail["regions"][0]["kind"] == "global" and detail["regions"][0]["box"] == [0, 0, 160, 120]

    assert api.get(detail["file_url"]).status_code == 200
    thumbnail = api.get(detail["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"

    patched = api.patch(reverse("api:image", args=[image_id]), {"is_public": True}, format="json")
    assert patched.status_code == 200 and patched.json()["is_public"] is True
    assert api.get(reverse("api:images") + "?visibility=public").json()["count"] == 1

    stored = settings.MEDIA_ROOT / Image.objects.get(pk=image_id).file
    assert api.delete(reverse("api:image", args=[image_id])).status_code == 204  # to the trash
    assert api.get(reverse("api:image", args=[image_id])).status_code == 404 and stored.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(reverse("api:trashed_image", args=[image_id])).status_code == 204  # for good
    assert not Image.all_objects.exists() and not Region.objects.exists() and not stored.exists()


def test_bad_patch_payload_is_a_readable_400(api, owner, upload):
    image = upload(owner, images.png()).image
    response = api.patch(reverse("api:image", args=[image.pk]), {"is_public": "perhaps"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("is_public:")


def test_unknown_status_filter_is_a_readable_400(api):
    response = api.get(reverse("api:images") + "?status=bogus")
    assert response.status_code == 400 and "Unknown status" in response.json()["detail"]


def test_retry_queues_the_image_again(api, owner, upload, django_capture_on_commit_callbacks):
    image = upload(owner, images.png()).image
    first_done = Image.objects.get(pk=image.pk).processed_at
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("api:image_retry", args=[image.pk]))
    assert response.status_code == 202
    assert Image.objects.get(pk=image.pk).processed_at > first_done


def test_the_openapi_schema_describes_the_images_endpoints(api):
    response = api.get(reverse("api:schema") + "?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/images/" in paths and "/api/images/{id}/retry/" in paths


def test_retry_is_idempotent_while_the_image_is_on_its_way(
    api, owner, upload, monkeypatch, django_capture_on_commit_callbacks
):
    from django_q.conf import Conf
    from django_q.models import OrmQ

    image = upload(owner, images.png()).image
    monkeypatch.setattr(Conf, "SYNC", False)  # tasks wait in the (ORM) broker
    with django_capture_on_commit_callbacks(execute=True):
        answers = [api.post(reverse("api:image_retry", args=[image.pk])).status_code for _ in range(20)]
    assert answers == [202] * 20
    assert OrmQ.objects.count() == 1  # the first press queued it; the other 19 found it queued
    assert Image.objects.get(pk=image.pk).status == "pending"


def test_anonymous_api_calls_get_401_with_a_token_challenge(db):
    response = APIClient().get(reverse("api:images"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "credentials" in response.json()["detail"]


@pytest.mark.parametrize("name, method", [("api:token", "post"), ("api:search", "post"), ("api:image", "patch")])
def test_json_nested_too_deep_is_a_400_with_a_sentence(api, owner, upload, name, method):
    image = upload(owner, images.png()).image
    url = reverse(name, args=[image.pk]) if name == "api:image" else reverse(name)
    deep = "[" * 100_000 + "]" * 100_000
    response = getattr(api, method)(url, deep, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "The JSON is nested too deeply."


@pytest.mark.django_db(transaction=True)
def test_api_answers_json_503_while_the_database_connection_is_gone(owner):
    api = APIClient()
    api.force_authenticate(owner)
    assert api.get(reverse("api:images")).status_code == 200
    terminate_database_connection()
    response = api.get(reverse("api:images"))
    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert "database is unavailable" in response.json()["detail"]
    assert api.get(reverse("api:images")).status_code == 200  # the next request reconnects


def test_an_api_url_that_matches_nothing_answers_json_404(api):
    response = api.get("/api/images/not-a-number/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert "/api/docs/" in response.json()["detail"]


def test_the_schema_declares_uploads_as_binary_files(api):
    """What a generated client needs to send bytes (they were declared as URL strings)."""
    schema = api.get(reverse("api:schema"), HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]

    def request_schema(path: str) -> dict:
        ref = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        return components[ref.rsplit("/", 1)[1]]

    assert request_schema("/api/images/")["properties"]["files"]["items"] == {"type": "string", "format": "binary"}
    assert request_schema("/api/search/")["properties"]["image"]["format"] == "binary"


def test_json_values_must_have_the_types_the_schema_states(api, owner, upload):
    """DRF took 0 for false and [0] for the tag "0"; a client sending those has a bug to hear about."""
    image = upload(owner, images.png()).image
    patched = api.patch(reverse("api:image", args=[image.pk]), {"share_location": 0}, format="json")
    assert patched.status_code == 400 and patched.json()["errors"]["share_location"] == ["Send true or false."]
    tagged = api.post(reverse("api:image_tags", args=[image.pk]), {"remove": [0]}, format="json")
    assert tagged.status_code == 400 and tagged.json()["errors"]["remove"] == ["Item: Send a string."]
    searched = api.post(reverse("api:search"), {"text": 5}, format="json")
    assert searched.status_code == 400 and searched.json()["errors"]["text"] == ["Send a string."]
    counted = api.post(reverse("api:search"), {"image_id": True}, format="json")
    assert counted.status_code == 400 and counted.json()["errors"]["image_id"] == ["Send a whole number."]
    # A form carries only text: "true" there is still true.
    assert api.patch(reverse("api:image", args=[image.pk]), {"share_location": "true"}).status_code == 200


@pytest.mark.parametrize("parameter", ["status", "visibility"])
def test_an_empty_filter_is_refused_like_any_value_not_listed(api, parameter):
    response = api.get(reverse("api:images") + f"?{parameter}=")
    assert response.status_code == 400 and parameter in response.json()["errors"]


def test_a_token_works_as_a_bearer_token_too(owner):
    """What generated clients send unless told otherwise (the schema's security scheme is HTTP bearer)."""
    token = token_create(user=owner, name="generated")[1]
    assert APIClient().get(reverse("api:images"), HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert APIClient().get(reverse("api:images"), HTTP_AUTHORIZATION="Bearer not-a-token").status_code == 401
    assert APIClient().get(reverse("api:images"), HTTP_AUTHORIZATION=f"Bearer {token} extra").status_code == 401


def test_each_body_type_of_an_operation_has_its_own_component(api):
    """One component for JSON, a form and multipart made openapi-python-client send multipart labelled
    as JSON. Now: JSON only where there are no files, and search's two bodies apart."""
    schema = api.get(reverse("api:schema"), HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            refs = [body["schema"]["$ref"] for body in content.values()]
            assert len(set(refs)) == len(refs), f"{method.upper()} {path} shares one component between body types"
    assert list(schema["paths"]["/api/auth/token/"]["post"]["requestBody"]["content"]) == ["application/json"]
    search = schema["paths"]["/api/search/"]["post"]["requestBody"]["content"]
    as_json = components[search["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    as_multipart = components[search["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert "image" not in as_json["properties"] and "image" in as_multipart["required"]
    assert {"not": {"required": ["image_id", "region_id"]}} in as_json["allOf"]  # one photo at most, stated
    assert schema["components"]["securitySchemes"]["apiToken"] == {
        **schema["components"]["securitySchemes"]["apiToken"],
        "type": "http",
        "scheme": "bearer",
    }
