"""Malformed or oversized form posts get the project's own sentence, not Django's bare "Bad Request"."""

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render

LONG_HEADERS = (
    "A file name is too long: each file's name and headers must fit in about 1,000 characters. "
    "Rename the file and upload it again."
)


def refusal_message(error: Exception) -> str:
    """The sentence for a request Django refused while reading its body."""
    from gallery.services import too_many_files_message

    if isinstance(error, TooManyFilesSent):
        return too_many_files_message()
    if isinstance(error, RequestDataTooBig):
        return "The request is too large; send fewer or smaller files at once."
    if isinstance(error, MultiPartParserError) and "header size" in str(error):
        return LONG_HEADERS
    return "The request could not be read (malformed form data); try again."


def refusal_response(request: HttpRequest, error: Exception) -> HttpResponse:
    return sentence_response(request, refusal_message(error))


def sentence_response(request: HttpRequest, message: str) -> HttpResponse:
    """A 400 that says why: JSON under /api/, a page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=400)
    return render(request, "400.html", {"message": message}, status=400)


class FormPostErrors:
    """Reads a web form post's body before CSRF checking does, so that too many files, a body over
    the limit or a file name too long for the multipart headers answer a 400 page with a sentence.
    (API views parse their own bodies; imgsearch.middleware answers those.)"""

    REFUSED = (MultiPartParserError, SuspiciousOperation)

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.method == "POST" and not request.path.startswith("/api/"):
            try:
                request.POST  # noqa: B018 - parse now, as CsrfViewMiddleware would
            except self.REFUSED as error:
                return refusal_response(request, error)
        return self.get_response(request)
