"""Security: the secret key, hosts, HTTPS, the Content-Security-Policy, passwords and lockout, sign-up,
API tokens and the API's authentication, throttles and schema."""

from datetime import timedelta
from urllib.parse import urlsplit

from csp.constants import NONE, SELF, UNSAFE_INLINE

from imgsearch.env import env_bool, env_int, env_list, env_str, secret_key_file
from imgsearch.settings.core import DEBUG, MAP_TILE_URL, VAR_DIR

# SECRET_KEY from the environment; otherwise one generated on first start and kept in the var dir
# (never a key everyone can read in this repository), except with DEBUG on, for quick experiments.
SECRET_KEY = env_str("SECRET_KEY", "") or (
    "django-insecure-imgsearch-debug-only-key" if DEBUG else secret_key_file(VAR_DIR / "secret_key")
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])  # (Django's test runner adds its own)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Content-Security-Policy (django-csp): scripts and styles only from our own static files, never
# inline, so an injected <script> cannot run. Style *attributes* are allowed: the boxes drawn over
# photos are placed by the server with them (no script needed to see a match).
# Map tiles come from the tile server MAP_TILE_URL names, if any.
_tile_origin = [f"{urlsplit(MAP_TILE_URL).scheme}://{urlsplit(MAP_TILE_URL).netloc}"] if "://" in MAP_TILE_URL else []
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:", "blob:", *_tile_origin],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Behind HTTPS (README, "Deploying"): all off by default so `make run` works over plain HTTP.
# The proxy in front sets X-Forwarded-Proto; trust it only when that proxy is the only way in.
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule: revokes a person's API tokens whenever their password changes.
    {"NAME": "imgsearch.accounts.RevokeTokensOnPasswordChange"},
]
# Repeated wrong passwords lock that username from that address for a while (django-axes); many
# from several addresses slow sign-ins to the account down (imgsearch/accounts.py says how); the
# API's token endpoint has its own rate (REST_FRAMEWORK throttles below).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
LOGIN_SLOWDOWN_AFTER = env_int("LOGIN_SLOWDOWN_AFTER", 20, minimum=1)
AXES_HANDLER = "imgsearch.accounts.SlowDownHandler"
# A refused sign-in is not a failure: the lock ends LOGIN_LOCKOUT_MINUTES after the last real guess,
# and a slowed account's wait does not grow with the attempts it refused.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "imgsearch.accounts.lockout_response"
# Proxies in front that append the client's address to X-Forwarded-For (README, "Deploying"): 0 when
# clients connect directly, and then the header is ignored (imgsearch/proxies.py).
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "imgsearch.proxies.client_address"
AXES_USERNAME_CALLABLE = "imgsearch.accounts.lockout_username"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "gallery:my_images"
LOGOUT_REDIRECT_URL = "home"

# --- Accounts -------------------------------------------------------------------------------
ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", True)
# Sign-up attempts per address per hour (a bot making accounts in bulk meets a 429).
SIGNUP_RATE_PER_HOUR = env_int("SIGNUP_RATE_PER_HOUR", 5, minimum=1)

# --- API tokens (django-rest-knox: only a hash of each token is stored) --------------------------
KNOX_TOKEN_MODEL = "gallery.ApiToken"
# knox's migrations create its own token table even when the model is swapped for ours (which has a
# name); nothing would use that table, and its foreign key to users would block `flush`.
MIGRATION_MODULES = {"knox": None}
# How long a new token works unless its owner picks another lifetime (7, 30, 90 or 365 days).
API_TOKEN_DAYS = env_int("API_TOKEN_DAYS", 90, minimum=1)
API_TOKENS_PER_USER = env_int("API_TOKENS_PER_USER", 20, minimum=1)
REST_KNOX = {"TOKEN_TTL": timedelta(days=API_TOKEN_DAYS), "AUTH_HEADER_PREFIX": "Token"}

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an anonymous call then gets 401 with `WWW-Authenticate: Token` (the first class
    # names the challenge), not a bare 403; browsers' session cookies still work.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "imgsearch.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_RATES": {"token": env_str("TOKEN_THROTTLE_RATE", "10/minute")},
    # Never believe X-Forwarded-For by default (DRF's None would); our throttles count by the address
    # imgsearch/proxies.py trusts (imgsearch.api.AddressRateThrottle).
    "NUM_PROXIES": 0,
    "DEFAULT_PARSER_CLASSES": [
        "imgsearch.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "imgsearch.parsers.MultiPartParser",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "imgsearch.api.ApiSchema",
    "EXCEPTION_HANDLER": "imgsearch.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "imgsearch API",
    "DESCRIPTION": "Upload photos and find them again by meaning.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request and response components apart: uploads are then declared as binary files (a generated
    # client sends bytes), not as the URLs the responses carry.
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the installed sidecar package: the docs work offline, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Search's JSON and multipart bodies as components of their own (imgsearch.api).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "imgsearch.api.one_component_per_body_type",
        "search.web.api.state_search_rules",
    ],
    # Three fields are called "kind": name their enums apart.
    "ENUM_NAME_OVERRIDES": {
        "QueryTermKindEnum": "search.web.api.QUERY_TERM_KINDS",
        "MatchKindEnum": "search.query.MATCH_KINDS",
    },
}
