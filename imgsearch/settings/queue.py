"""Background work: the django-q2 broker and cluster, and the image work queue's timing (claims,
heartbeats, recovery; gallery/work_queue.py)."""

from imgsearch.env import ConfigError, env_bool, env_float, env_int, env_str

# --- Background work (django-q2) -----------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
# Throttle counts live in the cache: per process by default, shared through Redis when REDIS_URL is set.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# What processes an uploaded image, in the search app, in two stages with a task each: the whole
# image (searchable in about a second), then its objects (SAM, seconds to minutes on a CPU).
IMAGE_PROCESSING_TASK = "search.tasks.process_image"
IMAGE_OBJECTS_TASK = "search.tasks.find_objects"
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
