"""Request parsers for the API (imported by settings: nothing here may import DRF's views)."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a 400 for JSON nested deeper than Python's recursion limit (a 500
    RecursionError otherwise: `[[[[...]]]]` 100,000 deep is a few hundred kilobytes)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("The JSON is nested too deeply.") from None


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser, with our sentence for a file name too long for Django's header limit."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except ParseError as error:
            if "header size" in str(error.detail):
                from imgsearch.upload_errors import LONG_HEADERS

                raise ParseError(LONG_HEADERS) from None
            raise
