"""Answers no view gives: hostile input refused at the edge, and API errors as JSON, even the ones no
view handled (a database that went away, a bug)."""

import contextlib
import logging

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.cache import patch_cache_control

from imgsearch.params import BadParameter, has_nul
from imgsearch.upload_errors import refusal_response, sentence_response

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


class HostileInput:
    """A NUL byte in the path or the query string is refused before any view runs (no database column
    can hold one); a BadParameter a view raises (imgsearch.params) is a 400 with its sentence."""

    NUL_REFUSED = "The address contains a NUL character (%00); remove it and try again."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        query = request.GET
        if has_nul(request.path) or any(has_nul(key) or any(map(has_nul, query.getlist(key))) for key in query):
            return sentence_response(request, self.NUL_REFUSED)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if isinstance(exception, BadParameter):
            return sentence_response(request, str(exception))
        return None


class PrivateResponses:
    """What a signed-in person is shown (a page, the API's JSON, the new token shown once) is stored by
    no cache, shared or the browser's; responses that set their own caching (thumbnails, privately
    for an hour) keep it. Every response says which browser features it does not use."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        response = self.get_response(request)
        if self._signed_in(request) and not response.has_header("Cache-Control"):
            patch_cache_control(response, private=True, no_store=True)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response

    @staticmethod
    def _signed_in(request: HttpRequest) -> bool:
        user = getattr(request, "user", None)
        try:
            return user is not None and user.is_authenticated
        except DatabaseError:  # the session could not be read (the database is away): assume so
            return True


class ApiErrorsAsJson:
    """For /api/ requests, turn an unhandled exception into a JSON body with a sentence: 503 when the
    database is unreachable (a restart, a failover: try again), 500 otherwise. Pages keep Django's
    own error pages."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not request.path.startswith(API_PREFIX) or isinstance(exception, BadParameter):
            return None  # pages keep Django's error pages; HostileInput answers a BadParameter
        if isinstance(exception, (SuspiciousOperation, MultiPartParserError)):
            # A body Django refused to read (too many files, too large): a 400 with its sentence.
            return refusal_response(request, exception)
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.warning("API %s %s: database unavailable (%s)", request.method, request.path, exception)
            for connection in connections.all(initialized_only=True):
                with contextlib.suppress(Exception):  # a dead connection may not close cleanly
                    connection.close()  # the next request opens a fresh one
            response = JsonResponse(
                {"detail": "The database is unavailable for a moment; try again shortly."}, status=503
            )
            response["Retry-After"] = "5"
            return response
        logger.exception("API %s %s failed", request.method, request.path, exc_info=exception)
        return JsonResponse({"detail": "Something went wrong on the server; it has been logged."}, status=500)
