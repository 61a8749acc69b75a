"""How API clients authenticate: knox's tokens, under the header name generated clients use.

This module is imported by DRF's settings (DEFAULT_AUTHENTICATION_CLASSES), so it imports no view.
"""

import knox.auth
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import get_authorization_header
from rest_framework.exceptions import AuthenticationFailed


class TokenAuthentication(knox.auth.TokenAuthentication):
    """knox's API tokens, sent as `Authorization: Token <token>` or as `Authorization: Bearer <token>`,
    the standard form generated clients send unless told otherwise. A 401 still challenges with
    `WWW-Authenticate: Token`."""

    def authenticate(self, request):
        words = get_authorization_header(request).split()
        if words and words[0].lower() == b"bearer":
            if len(words) != 2:
                raise AuthenticationFailed("Invalid token header: send `Bearer <token>`, the token without spaces.")
            return self.authenticate_credentials(words[1])
        return super().authenticate(request)


class TokenScheme(OpenApiAuthenticationExtension):
    """The token in the schema as HTTP bearer authentication, which client generators understand."""

    target_class = "imgsearch.authentication.TokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from POST /api/auth/token/ (or the Tokens page), sent as "
            "`Authorization: Bearer <token>`; `Authorization: Token <token>` works too.",
        }
