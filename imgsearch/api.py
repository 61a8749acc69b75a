"""API-wide conventions: every error body carries a readable `detail` sentence."""
from rest_framework import parsers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from imgsearch.parsers import JSONParser, MultiPartParser


class ObtainTokenApi(ObtainAuthToken):
    """POST username and password, get your API token (TOKEN_THROTTLE_RATE requests per address)."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    parser_classes = [parsers.FormParser, MultiPartParser, JSONParser]


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
        response.data = {"detail": _first_message(response.data), "errors": response.data}
    return response
