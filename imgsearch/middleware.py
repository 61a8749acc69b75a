"""API errors are JSON, even the ones no view handled (a database that went away, a bug)."""

import contextlib
import logging

from django.core.exceptions import SuspiciousOperation
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError

from imgsearch.upload_errors import refusal_response

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


class ApiErrorsAsJson:
    """For /api/ requests, turn an unhandled exception into a JSON body with a sentence: 503 when the
    database is unreachable (a restart, a failover: try again), 500 otherwise. Pages keep Django's
    own error pages."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not request.path.startswith(API_PREFIX):
            return None
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
