"""Who a request came from, behind the proxies the settings trust.

With TRUSTED_PROXIES = 0 (the default: the app answers clients directly) the address is the
connection's own, REMOTE_ADDR, and X-Forwarded-For is ignored: a client can write anything there.
Behind N proxies that each append the address they saw to X-Forwarded-For (nginx's
$proxy_add_x_forwarded_for), the client is the Nth entry from the right; what the client wrote
before those stays untrusted. The API's throttles (REST_FRAMEWORK NUM_PROXIES), the sign-in lock
(django-axes' AXES_CLIENT_IP_CALLABLE) and the sign-up limit all count by this one address.
"""

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXIES
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    return forwarded[-proxies] if len(forwarded) >= proxies else remote
