"""API-wide conventions (every error body carries a readable `detail` sentence) and the account
endpoints: obtain a token with a password, list and revoke your tokens."""

import copy

from axes.handlers.proxy import AxesProxyHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import parsers, serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from gallery.tokens import LIFETIME_CHOICES, TokenRefused, token_create, token_revoke, tokens_of
from imgsearch.accounts import lockout_response
from imgsearch.params import has_nul
from imgsearch.parsers import JSONParser, MultiPartParser
from imgsearch.proxies import client_address
from imgsearch.serializers import JsonTypedSerializer


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in a sentence a person can act on.")
    errors = serializers.DictField(required=False, help_text="Invalid input: the problem with each field.")
    fix = serializers.CharField(required=False, help_text="Staff only: what to run or set on the server.")


class ApiSchema(AutoSchema):
    """drf-spectacular's schema plus the errors every operation can answer with (all JSON with a
    `detail` sentence), so that a generated client knows every status the server sends."""

    def map_parsers(self) -> list[str]:
        # One body type per operation, JSON wherever the view reads it (multipart where it takes files):
        # a schema offering JSON, a form and multipart for one body made generated clients send
        # multipart labelled as JSON, or not import at all (openapi-python-client 0.29). The server
        # still reads a form or multipart body where it reads JSON (curl -F works); the README says so.
        types = super().map_parsers()
        return ["application/json"] if "application/json" in types else types[:1]

    def _get_paginator(self):
        # Only GET lists are paginated (an upload's POST answers a plain list of outcomes).
        return super()._get_paginator() if self.method == "GET" else None

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)

        def error(code: str, description: str) -> None:
            if code not in responses:
                responses[code] = {
                    **self._get_response_for_code(ErrorSerializer, code, direction=direction),
                    "description": description,
                }

        error("400", "Invalid input; `detail` says what to change.")
        if self.view.get_authenticators():
            error("401", "Not logged in, or the token is invalid, expired or revoked (`WWW-Authenticate: Token`).")
        if "{" in self.path:
            error("404", "No such object among those you may see.")
        if self.method == "GET" and self._is_list_view() and self._get_paginator():
            error("404", "No such page (`page` beyond the last one).")
        if self.method in {"POST", "PUT", "PATCH"}:
            error("415", "The body's content type is not one this operation reads.")
        if self.view.get_throttles():
            error("429", "Too many requests; `Retry-After` says when to try again.")
        error(
            "503", "The database (or the search index, or the models) is unavailable for a moment; try again shortly."
        )
        return responses


OTHER_BODY_TYPES = {"multipart/form-data": "Multipart", "application/x-www-form-urlencoded": "Form"}


def one_component_per_body_type(result: dict, **_) -> dict:
    """drf-spectacular postprocessing hook. An operation that reads two body types (search: JSON, or
    multipart with a query photo) gets a request component for each: `XRequest` for JSON, without
    the file fields JSON cannot carry, and `XMultipartRequest` with them. One component shared by
    both made a generated client unable to tell which body it holds."""
    schemas = result.get("components", {}).get("schemas", {})
    originals = copy.deepcopy(schemas)
    for path in result.get("paths", {}).values():
        for operation in path.values():
            content = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            if len(content) < 2:
                continue
            for media_type, body in content.items():
                name = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
                if name not in originals:
                    continue
                component = copy.deepcopy(originals[name])
                if media_type in OTHER_BODY_TYPES:
                    own = f"{name.removesuffix('Request')}{OTHER_BODY_TYPES[media_type]}Request"
                    schemas[own] = component
                    body["schema"] = {"$ref": f"#/components/schemas/{own}"}
                else:
                    properties = component.get("properties", {})
                    for key in [key for key, field in properties.items() if field.get("format") == "binary"]:
                        del properties[key]
                        if key in component.get("required", []):
                            component["required"].remove(key)
                    schemas[name] = component
    return result


def not_found(request: HttpRequest, exception) -> HttpResponse:
    """handler404: JSON under /api/ (a URL that matches no endpoint, like /api/images/abc/), our page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "There is no such API endpoint or object; see /api/docs/."}, status=404)
    return defaults.page_not_found(request, exception)


class TokenOutputSerializer(serializers.Serializer):
    key = serializers.CharField(
        source="token_key", help_text="The token's first characters: its name in lists and URLs."
    )
    name = serializers.CharField()
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField(allow_null=True)
    current = serializers.SerializerMethodField(help_text="Whether this request came with this token.")

    def get_current(self, token) -> bool:
        return getattr(self.context["request"].auth, "pk", None) == token.pk


class NewTokenOutputSerializer(TokenOutputSerializer):
    token = serializers.CharField(
        help_text="Send it as `Authorization: Token <token>`. Shown this once; only a hash is kept."
    )


class ObtainTokenInputSerializer(JsonTypedSerializer, AuthTokenSerializer):
    name = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="What the token is for, e.g. 'backup script'."
    )
    days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=LIFETIME_CHOICES[-1],
        help_text="Days until it expires (API_TOKEN_DAYS when left out).",
    )


class AddressRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle, counting by the client address imgsearch.proxies trusts."""

    def get_ident(self, request: Request) -> str:
        return client_address(request._request)


class ObtainTokenApi(APIView):
    """POST username and password, get a new API token (TOKEN_THROTTLE_RATE requests per address).

    Each call makes a new token; list yours at /api/auth/tokens/ and revoke the ones you no longer use."""

    authentication_classes = []  # the credentials are in the body
    permission_classes = [AllowAny]
    throttle_classes = [AddressRateThrottle]
    throttle_scope = "token"
    parser_classes = [parsers.FormParser, MultiPartParser, JSONParser]

    @extend_schema(request=ObtainTokenInputSerializer, responses={200: NewTokenOutputSerializer})
    def post(self, request: Request) -> Response:
        username = request.data.get("username") if hasattr(request.data, "get") else None
        # 429 for a locked name, as on the sign-in page, whatever the password. (A name no account can
        # have, NUL and all, is left to the serializer's 400.)
        checkable = isinstance(username, str) and not has_nul(username)
        if checkable and AxesProxyHandler.is_locked(request._request, {"username": username}):
            return lockout_response(request._request)
        serializer = ObtainTokenInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            token, raw = token_create(user=data["user"], name=data.get("name", ""), days=data.get("days"))
        except TokenRefused as error:
            raise ValidationError(str(error)) from None
        token.token = raw
        return Response(NewTokenOutputSerializer(token, context={"request": request}).data)


class TokenListApi(APIView):
    """Your API tokens that still work, newest first (never the tokens themselves)."""

    @extend_schema(responses=TokenOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(TokenOutputSerializer(tokens_of(request.user), many=True, context={"request": request}).data)


class TokenDetailApi(APIView):
    """Revoke one of your tokens (the one this request uses too, if you like)."""

    @extend_schema(
        responses={
            204: OpenApiResponse(description="Revoked."),
            404: OpenApiResponse(description="No such token of yours."),
        }
    )
    def delete(self, request: Request, key: str) -> Response:
        if not token_revoke(user=request.user, key=key):
            raise NotFound("You have no token with that key.")
        return Response(status=status.HTTP_204_NO_CONTENT)


def _first_message(errors) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            message = _first_message(value)
            return message if field in {"non_field_errors", "detail"} else f"{field}: {message}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        errors = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        response.data = {"detail": _first_message(response.data), "errors": errors}
    return response
