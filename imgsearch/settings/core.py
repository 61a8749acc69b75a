"""Core: where things live, the apps, the database, static and media files, mail, uploads, logging."""

from pathlib import Path

from imgsearch.env import ConfigError, database_from_url, env_bool, env_float, env_int, env_json_object, env_str

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(env_str("IMGSEARCH_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",  # its widget templates, for FORM_RENDERER below
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "csp",
    "gallery",
    "search",
]

# Forms render through the project's templates, so templates/django/forms/ can improve Django's own
# (form errors are announced to screen readers there).
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads a hostile path or query string (a NUL byte: no database column holds one).
    "imgsearch.middleware.HostileInput",
    # Signed-in responses are cached nowhere; every response says which browser features it does not use.
    "imgsearch.middleware.PrivateResponses",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "imgsearch.upload_errors.FormPostErrors",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "imgsearch.middleware.ApiErrorsAsJson",
    # Last, as django-axes asks: it turns a locked-out login into our 429 (imgsearch.accounts).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "imgsearch.urls"
WSGI_APPLICATION = "imgsearch.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "gallery.context_processors.site",
                "search.web.context_processors.models",
                "search.web.context_processors.suggestions",
            ],
        },
    },
]

# PostgreSQL connections: web server processes (imgsearch/wsgi.py turns DB_POOL on) borrow from a
# psycopg pool of at most DB_POOL_SIZE per process, so PostgreSQL sees at most gunicorn's workers x
# DB_POOL_SIZE connections from the web, however many clients come. Other processes (the worker,
# the indexer, manage.py) are single-threaded and django-q2 forks them: one connection each, closed
# after every task, never a pool (a forked child would share the parent's pooled sockets).
DB_POOL = env_bool("DB_POOL", False)
# One connection per gunicorn thread (imgsearch/gunicorn_conf.py) is all a web process can use.
DB_POOL_SIZE = env_int("DB_POOL_SIZE", env_int("WEB_THREADS", 4, minimum=1), minimum=1)
DB_POOL_TIMEOUT = env_float("DB_POOL_TIMEOUT", 10.0)
_DATABASE_URL = env_str("DATABASE_URL", "")
if not _DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": database_from_url(
        _DATABASE_URL, base_dir=BASE_DIR, pool_size=DB_POOL_SIZE if DB_POOL else 0, pool_timeout=DB_POOL_TIMEOUT
    )
    if _DATABASE_URL
    # The worker and the web process write at once; wait for the lock instead of failing.
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "db.sqlite3", "OPTIONS": {"timeout": 20}}
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Uploaded originals and cached thumbnails. Nothing here is served by URL: every byte goes
# through gallery.views.image_file, which checks that the requester may see the image.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
# "" serves bytes from Django; "x-accel-redirect" (nginx) or "x-sendfile" (Apache, lighttpd)
# hands the checked request to the front web server, which must map MEDIA_INTERNAL_PREFIX to MEDIA_ROOT.
MEDIA_SENDFILE = env_str("MEDIA_SENDFILE", "")
if MEDIA_SENDFILE not in {"", "x-accel-redirect", "x-sendfile"}:
    raise ConfigError("MEDIA_SENDFILE must be empty, 'x-accel-redirect' or 'x-sendfile'.")
MEDIA_INTERNAL_PREFIX = env_str("MEDIA_INTERNAL_PREFIX", "/protected-media/")
# Where originals and thumbnails live: any Django storage class (gallery/storage.py). The default
# keeps them under MEDIA_ROOT. An S3-compatible store lets workers on other machines read them:
# MEDIA_STORAGE=storages.backends.s3.S3Storage (django-storages, in requirements.txt) with
# MEDIA_STORAGE_OPTIONS='{"bucket_name": "photos", "endpoint_url": "https://s3.example.com"}'.
MEDIA_STORAGE = env_str("MEDIA_STORAGE", "django.core.files.storage.FileSystemStorage")
STORAGES = {
    "default": {"BACKEND": MEDIA_STORAGE, "OPTIONS": env_json_object("MEDIA_STORAGE_OPTIONS")},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Email (password reset) ---------------------------------------------------------------
# Without EMAIL_HOST, mail is printed to the log (console backend): password reset links can be
# read there on a single-user box. Set EMAIL_HOST (and the rest) to send it for real.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "imgsearch <noreply@localhost>")

# --- Uploads --------------------------------------------------------------------------------
# Camera RAW is large: a 24 MP DNG is 48 MB uncompressed, a 48 MP phone ProRAW up to ~100 MB.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 100 * 1024 * 1024, minimum=1)
# Decompression bombs: a 50 MP cap is ~150 MB of RGB once decoded.
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50_000_000, minimum=1)
MAX_FILES_PER_UPLOAD = env_int("MAX_FILES_PER_UPLOAD", 100, minimum=1)
# Django refuses to parse more files than this; the views turn that into our own sentence.
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_FILES_PER_UPLOAD
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 384, minimum=16)
# Deleted photos wait this long in their owner's trash, then go for good (the worker's sweep).
TRASH_DAYS = env_int("TRASH_DAYS", 30, minimum=1)

# Maps (the Places page, a photo's info): tiles from a tile server of your choice, as a Leaflet URL
# template ("https://tile.openstreetmap.org/{z}/{x}/{y}.png"). Empty (the default): no map, and no
# request leaves for a third party; places are still listed.
MAP_TILE_URL = env_str("MAP_TILE_URL", "")
MAP_ATTRIBUTION = env_str("MAP_ATTRIBUTION", "")
if MAP_TILE_URL and (
    not MAP_TILE_URL.startswith(("https://", "http://", "/"))
    or not all(k in MAP_TILE_URL for k in ("{z}", "{x}", "{y}"))
):
    raise ConfigError(
        "MAP_TILE_URL is a tile URL template with {z}, {x} and {y}, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    )
# The worker watches libraries' folders (inotify on Linux) and rescans one as soon as something in
# it changes; off, or where no events come (a network share changed from another machine), the
# periodic rescans (each library's rescan_minutes) find the changes.
LIBRARY_WATCH = env_bool("LIBRARY_WATCH", True)
# Long side of the JPEG pages show in place of a larger original, or one browsers cannot show (HEIC, TIFF, RAW).
PREVIEW_SIZE = env_int("PREVIEW_SIZE", 2048, minimum=256)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Serve static files straight from the apps and static/ (no collectstatic step for `make run`).
WHITENOISE_USE_FINDERS = True

# Browser features no page of ours uses, turned off on every response (imgsearch.middleware.PrivateResponses).
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"


def _static_file_headers(headers, path: str, url: str) -> None:
    """Static files are answered by WhiteNoise before any middleware runs: they get the same
    protective headers here."""
    headers["X-Frame-Options"] = "DENY"
    headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    headers["Permissions-Policy"] = PERMISSIONS_POLICY


WHITENOISE_ADD_HEADERS_FUNCTION = _static_file_headers
