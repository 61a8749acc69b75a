"""imgsearch settings: one module, read from the environment.

Every value has a default that runs from a bare checkout (SQLite, the django-q2 ORM broker, the
full-size models). `DATABASE_URL` switches to PostgreSQL and `REDIS_URL` to the Redis broker.
The README's configuration table lists every variable read here.
"""
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF, UNSAFE_INLINE

from imgsearch.env import (
    ConfigError,
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_json_object,
    env_list,
    env_str,
    secret_key_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("IMGSEARCH_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# SECRET_KEY from the environment; otherwise one generated on first start and kept in the var dir
# (never a key everyone can read in this repository), except with DEBUG on, for quick experiments.
SECRET_KEY = env_str("SECRET_KEY", "") or (
    "django-insecure-imgsearch-debug-only-key" if DEBUG else secret_key_file(VAR_DIR / "secret_key")
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Content-Security-Policy (django-csp): scripts and styles only from our own static files, never
# inline, so an injected <script> cannot run. Style *attributes* are allowed: the boxes drawn over
# photos are placed by the server with them (no script needed to see a match).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:", "blob:"],
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
                "search.context_processors.models",
                "search.context_processors.suggestions",
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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule: revokes a person's API tokens whenever their password changes.
    {"NAME": "imgsearch.accounts.RevokeTokensOnPasswordChange"},
]
# Repeated wrong passwords lock that username from that address for a while (django-axes); the
# API's token endpoint has its own rate (REST_FRAMEWORK throttles below).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "imgsearch.accounts.lockout_response"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "gallery:my_images"
LOGOUT_REDIRECT_URL = "home"

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
# MEDIA_STORAGE=storages.backends.s3.S3Storage (pip install "django-storages[s3]") with
# MEDIA_STORAGE_OPTIONS='{"bucket_name": "photos", "endpoint_url": "https://s3.example.com"}'.
MEDIA_STORAGE = env_str("MEDIA_STORAGE", "django.core.files.storage.FileSystemStorage")
STORAGES = {
    "default": {"BACKEND": MEDIA_STORAGE, "OPTIONS": env_json_object("MEDIA_STORAGE_OPTIONS")},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

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
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 25 * 1024 * 1024, minimum=1)
# Decompression bombs: a 50 MP cap is ~150 MB of RGB once decoded.
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50_000_000, minimum=1)
MAX_FILES_PER_UPLOAD = env_int("MAX_FILES_PER_UPLOAD", 100, minimum=1)
# Django refuses to parse more files than this; the views turn that into our own sentence.
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_FILES_PER_UPLOAD
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 384, minimum=16)

# --- Models ---------------------------------------------------------------------------------
# "full": ViT-B-32 CLIP + SAM ViT-B with downloaded weights (fetch_models).
# "tiny": small configs with random weights, built by the same loading code; for tests only.
# "demo": the small CLIP we train on generated shapes (committed weights) + the colour proposer;
#         the whole app works offline on generated scenes (`make demo`).
MODEL_PROFILE = env_str("IMGSEARCH_MODEL_PROFILE", "full")
MODEL_PROFILES = {
    "full": {
        "CLIP_MODEL": "ViT-B-32",
        "CLIP_PRETRAINED": "laion2b_s34b_b79k",
        "SAM_MODEL_TYPE": "vit_b",
        "SAM_CHECKPOINT_NAME": "sam_vit_b_01ec64.pth",
        "SAM_POINTS_PER_SIDE": 16,
        "SAM_PRED_IOU_THRESH": 0.86,
        "SAM_STABILITY_SCORE_THRESH": 0.92,
    },
    "tiny": {
        "CLIP_MODEL": "imgsearch-tiny",
        "CLIP_PRETRAINED": "",
        "SAM_MODEL_TYPE": "tiny",
        "SAM_CHECKPOINT_NAME": "",
        "SAM_POINTS_PER_SIDE": 2,
        # Random weights predict low IoU and unstable masks; let them through to test the plumbing.
        "SAM_PRED_IOU_THRESH": 0.0,
        "SAM_STABILITY_SCORE_THRESH": 0.0,
    },
    "demo": {
        "CLIP_MODEL": "imgsearch-demo",
        "CLIP_PRETRAINED": "",
        "CLIP_CHECKPOINT": str(BASE_DIR / "search" / "vision" / "model_weights" / "imgsearch-demo.pt"),
        # The colour proposer, with the learned objectness map filling its gaps (search/vision/objectness.py).
        "REGION_PROPOSER": "colour+objectness",
        # Its shapes can be small (7% of the short side: 0.06% of a 640x480 picture).
        "REGION_MIN_AREA_FRACTION": 0.0005,
        # Chosen on bench/heldout.py's tuning photographs (bench/heldout_offline.py --scenes 120
        # --thresholds): the lowest thresholds at which about 80% of what is shown is right (text,
        # crop and box from 0.92, region 0.93; with the speckle-trained objectness map region 0.92,
        # crop and box 0.91, text 0.90, a step within the draw's noise, so left). A left-out phrase
        # keeps 0.89: at 0.92 "-a red circle" no longer matched the shape it names
        # (tests/browser/test_search_plus.py).
        "MIN_SIMILARITY": 0.92,
        "MIN_EXCLUDE_SIMILARITY": 0.89,
        "MIN_IMAGE_SIMILARITY": 0.92,
        "MIN_SIMILAR_SIMILARITY": 0.97,
        "WHOLE_IMAGE_HANDICAP": 0.1,
        "SIMILAR_BY_OBJECTS": True,
        "NEAR_DUPLICATE_SIMILARITY": 0.95,
        "NEAR_DUPLICATE_CHECK_SIMILARITY": 0.6,
        "TAG_VOCABULARY": str(BASE_DIR / "search" / "vocabularies" / "demo.txt"),
        "TAG_PROMPT": "a {}",
        "TAG_MIN_PROBABILITY": 0.5,
        "SAM_MODEL_TYPE": "tiny",
        "SAM_CHECKPOINT_NAME": "",
        "SAM_POINTS_PER_SIDE": 2,
        "SAM_PRED_IOU_THRESH": 0.0,
        "SAM_STABILITY_SCORE_THRESH": 0.0,
    },
}
if MODEL_PROFILE not in MODEL_PROFILES:
    raise ConfigError(f"IMGSEARCH_MODEL_PROFILE={MODEL_PROFILE!r}; choose one of {sorted(MODEL_PROFILES)}.")
_profile = MODEL_PROFILES[MODEL_PROFILE]

MODEL_CACHE_DIR = Path(env_str("MODEL_CACHE_DIR", str(VAR_DIR / "models")))
# "auto" picks CUDA when torch sees a GPU, else the CPU.
MODEL_DEVICE = env_str("MODEL_DEVICE", "auto")
# Opt-in int8 dynamic quantisation of the Linear layers of SAM and CLIP on the CPU: faster encoders,
# slightly different masks and vectors (bench/quantization_deltas.py measures both).
MODEL_INT8 = env_bool("MODEL_INT8", False)
# Opt-in bfloat16 autocast for SAM and CLIP: for CUDA and for CPUs with AVX512-BF16 or AMX (elsewhere
# it is emulated and slower); bench/quantization_deltas.py measures speed and deltas.
MODEL_BF16 = env_bool("MODEL_BF16", False)
if MODEL_INT8 and MODEL_BF16:
    raise ConfigError("MODEL_INT8 and MODEL_BF16 are alternatives; turn one of them off.")
# 0 keeps torch's default (all cores); set it lower when several workers share a machine.
TORCH_THREADS = env_int("TORCH_THREADS", 0, minimum=0)
# Processes that load models keep freed memory for reuse (glibc mallopt) instead of page-faulting
# large tensors in fresh each time: ~1.5x faster SAM on a CPU, at the cost of keeping peak memory.
MALLOC_KEEP_FREED = env_bool("MALLOC_KEEP_FREED", True)

CLIP_MODEL = env_str("CLIP_MODEL", _profile["CLIP_MODEL"])
# An OpenCLIP pretrained tag; empty means random weights (tests only).
CLIP_PRETRAINED = env_str("CLIP_PRETRAINED", _profile["CLIP_PRETRAINED"])
# A local weights file; when set it wins over CLIP_PRETRAINED's download cache.
CLIP_CHECKPOINT = env_str("CLIP_CHECKPOINT", _profile.get("CLIP_CHECKPOINT", ""))
CLIP_BATCH_SIZE = env_int("CLIP_BATCH_SIZE", 32, minimum=1)

# "sam": Segment Anything; "colour": weight-free colour segmentation (generated scenes, tests);
# "colour+objectness": that joined with the demo's small learned objectness map (search/vision/objectness.py).
REGION_PROPOSER = env_str("REGION_PROPOSER", _profile.get("REGION_PROPOSER", "sam"))
OBJECTNESS_WEIGHTS = env_str("OBJECTNESS_WEIGHTS", str(BASE_DIR / "search" / "vision" / "model_weights" / "imgsearch-objectness.pt"))
SAM_MODEL_TYPE = env_str("SAM_MODEL_TYPE", _profile["SAM_MODEL_TYPE"])
SAM_CHECKPOINT = env_str(
    "SAM_CHECKPOINT",
    str(MODEL_CACHE_DIR / _profile["SAM_CHECKPOINT_NAME"]) if _profile["SAM_CHECKPOINT_NAME"] else "",
)
# 16x16 prompts instead of SAM's 32x32: 4x fewer mask decodes, and the objects worth a search
# result are large enough to be hit by a 16-point grid.
SAM_POINTS_PER_SIDE = env_int("SAM_POINTS_PER_SIDE", _profile["SAM_POINTS_PER_SIDE"], minimum=1)
# Prompts decoded at once. The decoder copies the image embedding once per prompt, so big batches
# thrash memory: ViT-B on 2 CPU cores decoded 256 prompts in 18.5 s at 16, 20.0 s at 64, 28.9 s at 256.
SAM_POINTS_PER_BATCH = env_int("SAM_POINTS_PER_BATCH", 16, minimum=1)
SAM_PRED_IOU_THRESH = env_float("SAM_PRED_IOU_THRESH", _profile["SAM_PRED_IOU_THRESH"])
SAM_STABILITY_SCORE_THRESH = env_float("SAM_STABILITY_SCORE_THRESH", _profile["SAM_STABILITY_SCORE_THRESH"])
SAM_BOX_NMS_THRESH = env_float("SAM_BOX_NMS_THRESH", 0.7)
# >0 runs SAM's hole/island clean-up (needs OpenCV); it is slow and rarely changes a box.
SAM_MIN_MASK_REGION_AREA = env_int("SAM_MIN_MASK_REGION_AREA", 0, minimum=0)
# SAM sees the image at 1024 px anyway; downscaling first keeps full-resolution masks of a
# 50 MP photo out of memory. Boxes are scaled back to original pixels.
SAM_MAX_SIDE = env_int("SAM_MAX_SIDE", 1024, minimum=32)

# Regions smaller than this fraction of the image are too small to be worth a search result.
REGION_MIN_AREA_FRACTION = env_float("REGION_MIN_AREA_FRACTION", _profile.get("REGION_MIN_AREA_FRACTION", 0.005))
# Boxes overlapping a better one by more than this IoU are the same object.
REGION_NMS_IOU = env_float("REGION_NMS_IOU", 0.8)
REGION_MAX_PER_IMAGE = env_int("REGION_MAX_PER_IMAGE", 24, minimum=0)

# --- Vector index ---------------------------------------------------------------------------
# Segments, generations and the writer lock of each model's index (see search/index/).
INDEX_DIR = Path(env_str("INDEX_DIR", str(VAR_DIR / "index")))
# Threads that scan segments at once per query; one per core is right for a web process. A
# rebuild writes this many equal segments.
INDEX_SHARDS = env_int("INDEX_SHARDS", 2, minimum=1)
# Segments with at least this many vectors are inverted files (IVF) instead of an exhaustive scan:
# a query then reads INDEX_IVF_NPROBE of their sqrt(n) lists, so the index can outgrow RAM.
INDEX_IVF_MIN_SLOTS = env_int("INDEX_IVF_MIN_SLOTS", 2_000_000, minimum=1)
# Lists an IVF segment scans per query; 0 = an eighth of them (recall@10 in bench/README.md).
INDEX_IVF_NPROBE = env_int("INDEX_IVF_NPROBE", 0, minimum=0)
# How often `run_indexer` looks at the change feed: a change reaches searches within about this long.
INDEX_POLL_SECONDS = env_float("INDEX_POLL_SECONDS", 0.5)
# Applied change-feed rows are deleted after this long; an indexer left off for longer rebuilds.
INDEX_FEED_RETENTION_HOURS = env_int("INDEX_FEED_RETENTION_HOURS", 24, minimum=1)
# Each process applies the change feed itself before searching, instead of a separate
# `run_indexer` (tests and debugging, like Q_SYNC).
INDEX_INLINE_WRITER = env_bool("INDEX_INLINE_WRITER", False)

# --- Search ---------------------------------------------------------------------------------
# Below this cosine similarity a text match is noise for ViT-B-32; the demo model scores higher overall.
MIN_SIMILARITY = env_float("MIN_SIMILARITY", _profile.get("MIN_SIMILARITY", 0.2))
# Image-to-image similarities (query image, more like this, region, box) run on a higher scale
# than text-to-image ones, so they get their own floor.
MIN_IMAGE_SIMILARITY = env_float("MIN_IMAGE_SIMILARITY", _profile.get("MIN_IMAGE_SIMILARITY", 0.5))
# "More like this" asks whether two photos are alike, a looser question than whether a photo holds a
# given thing: where a model rates unrelated photos of one kind of background close, it needs a higher floor.
# Unset (None): MIN_IMAGE_SIMILARITY's.
MIN_SIMILAR_SIMILARITY = env_float("MIN_SIMILAR_SIMILARITY", _profile.get("MIN_SIMILAR_SIMILARITY"))
# A left-out phrase ("beach -people") lowers each image it matches by the excess over this floor.
# Unset (None): MIN_SIMILARITY's. A show floor chosen for precision is too strict for it: the phrase
# would no longer match the thing it names.
MIN_EXCLUDE_SIMILARITY = env_float("MIN_EXCLUDE_SIMILARITY", _profile.get("MIN_EXCLUDE_SIMILARITY"))
# A search by an uploaded photo looks for it, pixel for pixel, inside this many of its best results
# (a crop finds the photo it was cut from first); each costs reading that photo's file. 0: never.
SOURCE_CHECKED = env_int("SOURCE_CHECKED", 10, minimum=0)
# Regions fetched from FAISS per query before grouping by image; grown when filters leave too few.
FETCH_K = env_int("FETCH_K", 100, minimum=1)
# A whole-image match this close to the best object match wins: the whole photo is the better answer.
SCORE_TIE_EPS = env_float("SCORE_TIE_EPS", 0.02)
# Subtracted from whole-image scores for every query but "more like this" (which asks about a whole
# photo). 0 for real CLIP, where "a beach at sunset" should find whole photos; the demo profile
# searches for objects only and its small model rates busy scenes too close to the objects in them.
WHOLE_IMAGE_HANDICAP = env_float("WHOLE_IMAGE_HANDICAP", _profile.get("WHOLE_IMAGE_HANDICAP", 0.0))
# "More like this" searches with the photo's whole-image vector and each of its objects' (a result
# scores its best match with any of them): photos that share an object with this one count as like
# it. Measured on the demo profile (P@5 0.39 -> 0.77 on held-out scenes); off by default until it is
# measured with real CLIP and SAM, whose many part and background masks may match too freely.
SIMILAR_BY_OBJECTS = env_bool("SIMILAR_BY_OBJECTS", _profile.get("SIMILAR_BY_OBJECTS", False))
# Near-duplicates (search/duplicates.py): whole-image vectors at least this similar, and perceptual
# hashes at most this many bits (of 64) apart. Calibrated with bench/near_duplicates.py.
NEAR_DUPLICATE_SIMILARITY = env_float("NEAR_DUPLICATE_SIMILARITY", _profile.get("NEAR_DUPLICATE_SIMILARITY", 0.9))
NEAR_DUPLICATE_HASH_BITS = env_int("NEAR_DUPLICATE_HASH_BITS", 12, minimum=0)
# What the hash misses (a crop): the owner's NEAR_DUPLICATE_CHECKED nearest photos by whole-image
# vector, at least this similar, get the pixel check (search.duplicates.same_picture) in the
# background; a crop moves CLIP's whole-image vector more than a re-encode does, hence the lower floor.
NEAR_DUPLICATE_CHECK_SIMILARITY = env_float("NEAR_DUPLICATE_CHECK_SIMILARITY",
                                            _profile.get("NEAR_DUPLICATE_CHECK_SIMILARITY", 0.8))
NEAR_DUPLICATE_CHECKED = env_int("NEAR_DUPLICATE_CHECKED", 8, minimum=0)
NEAR_DUPLICATE_CHECK_HASH_BITS = env_int("NEAR_DUPLICATE_CHECK_HASH_BITS", 22, minimum=0)
# Automatic tags (search/tagging.py): the vocabulary file, the prompt each label goes into, and the
# zero-shot probability a region needs for a label.
TAG_VOCABULARY = env_str("TAG_VOCABULARY", _profile.get("TAG_VOCABULARY", str(BASE_DIR / "search" / "vocabularies" / "photos.txt")))
TAG_PROMPT = env_str("TAG_PROMPT", _profile.get("TAG_PROMPT", "a photo of a {}"))
TAG_MIN_PROBABILITY = env_float("TAG_MIN_PROBABILITY", _profile.get("TAG_MIN_PROBABILITY", 0.3))
# Each person's recent searches kept (suggestions in the header search box, the search page's list).
RECENT_SEARCHES_KEPT = env_int("RECENT_SEARCHES_KEPT", 50, minimum=1)
# CLIP reads 77 tokens; longer text is almost surely a paste accident.
SEARCH_MAX_QUERY_CHARS = env_int("SEARCH_MAX_QUERY_CHARS", 500, minimum=1)
SEARCH_PAGE_SIZE = env_int("SEARCH_PAGE_SIZE", 24, minimum=1)
SEARCH_MAX_PAGE_SIZE = env_int("SEARCH_MAX_PAGE_SIZE", 100, minimum=1)

# --- Background work (django-q2) -----------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
# Throttle counts live in the cache: per process by default, shared through Redis when REDIS_URL is set.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# What processes an uploaded image: segmentation and embedding, in the search app.
IMAGE_PROCESSING_TASK = "search.tasks.process_image"
# A hard limit per task; the heartbeat below is what finds a dead worker quickly.
Q_TIMEOUT = env_int("Q_TIMEOUT", 900, minimum=10)
Q_WORKERS = env_int("Q_WORKERS", 1, minimum=1)
Q_CLUSTER = {
    "name": "imgsearch",
    # Each worker loads its own SAM + CLIP (~1.5 GB); one per machine is the sane default on a CPU.
    "workers": Q_WORKERS,
    "timeout": Q_TIMEOUT,
    "retry": Q_TIMEOUT + 60,
    # The pipeline records its own failures, and recovery re-queues what a crash interrupted.
    "max_attempts": 1,
    # Tasks a cluster holds beyond the ones running: a killed cluster takes these down with it
    # (recovery queues them again), so keep the prefetch small.
    "queue_limit": Q_WORKERS,
    "catch_up": False,
    "label": "Background tasks",
    "sync": env_bool("Q_SYNC", False),
    "poll": 0.5,
}
# Images one worker processes together: SAM's image encoder and CLIP each run once for the batch.
# Keeps a GPU busy (set 4-16 there); on a CPU one image already uses every core, so 1.
PROCESSING_BATCH_IMAGES = env_int("PROCESSING_BATCH_IMAGES", 1, minimum=1)
# Claims on an image tried before it is `failed` for good (a person's Retry starts a fresh count).
IMAGE_MAX_ATTEMPTS = env_int("IMAGE_MAX_ATTEMPTS", 3, minimum=1)
# A worker busy with an image says so this often...
PROCESSING_HEARTBEAT_SECONDS = env_float("PROCESSING_HEARTBEAT_SECONDS", 5.0)
# ...and an image silent for this long is taken back and queued again (a killed worker, a lost DB).
PROCESSING_STALE_SECONDS = env_float("PROCESSING_STALE_SECONDS", 30.0)
# A task a worker took from the broker and then lost with its process is queued again after this
# long (at once when a worker starts). Longer than a task may wait in a live worker's prefetch.
QUEUE_LOST_SECONDS = env_float("QUEUE_LOST_SECONDS", 300.0)
# How often `run_worker` looks for images that no worker or queued task will finish.
RECOVERY_SWEEP_SECONDS = env_float("RECOVERY_SWEEP_SECONDS", 10.0)
# How long a pipeline step waits for the database to come back (a restart, a failover).
DB_RETRY_SECONDS = env_float("DB_RETRY_SECONDS", 60.0)
if PROCESSING_STALE_SECONDS < 3 * PROCESSING_HEARTBEAT_SECONDS:
    raise ConfigError("PROCESSING_STALE_SECONDS must be at least 3 x PROCESSING_HEARTBEAT_SECONDS.")
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an anonymous call then gets 401 with `WWW-Authenticate: Token` (the first class
    # names the challenge), not a bare 403; browsers' session cookies still work.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_RATES": {"token": env_str("TOKEN_THROTTLE_RATE", "10/minute")},
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
    # Three fields are called "kind": name their enums apart.
    "ENUM_NAME_OVERRIDES": {"QueryTermKindEnum": "search.api.QUERY_TERM_KINDS", "MatchKindEnum": "search.query.MATCH_KINDS"},
}

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
