"""Test settings: the real settings module, pointed at PostgreSQL and the tiny model profile."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imgsearch")
os.environ.setdefault("IMGSEARCH_MODEL_PROFILE", "tiny")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "x" * 40)

from imgsearch.settings import *  # noqa: E402,F403

# Hashing passwords slowly is the point in production and a waste in tests.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# No `run_indexer` runs beside the test process: it applies the change feed itself before each
# search. Tests that exercise the separate indexer turn this off.
INDEX_INLINE_WRITER = True

# Each run names what it shares with other runs on one host after itself (a CI run beside a
# developer's): its test database (test_imgsearch_<run>; tests/conftest.py drops those of runs that
# died) and its task queue (the django-q2 cluster name: the Redis broker's keys in database 15). The
# run is the test process's pid; the worker, indexer and web processes it starts inherit it.
RUN = os.environ.setdefault("IMGSEARCH_TEST_RUN", str(os.getpid()))
TEST_DATABASE_PREFIX = "test_imgsearch_"
DATABASES["default"].setdefault("TEST", {})["NAME"] = f"{TEST_DATABASE_PREFIX}{RUN}"  # noqa: F405
Q_CLUSTER = {**Q_CLUSTER, "name": f"imgsearch-test-{RUN}"}  # noqa: F405
