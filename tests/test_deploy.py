"""Production settings: `check --deploy` is clean under the README's documented environment, and a
server never runs on a key everyone can read (one is generated into the var dir instead)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The README's "Deploying" environment, as an operator would set it.
PRODUCTION = {
    "ALLOWED_HOSTS": "photos.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://photos.example.com",
    "TRUST_X_FORWARDED_PROTO": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_COOKIES": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def run(args: list[str], var_dir: Path, **extra) -> subprocess.CompletedProcess:
    # A clean environment, as on a server: nothing the test run set (browser tests set
    # DJANGO_ALLOW_ASYNC_UNSAFE, which check --deploy rightly flags) leaks in.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
        "IMGSEARCH_VAR_DIR": str(var_dir),
        **extra,
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_check_deploy_is_clean_under_the_documented_production_settings(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_secret_key_one_is_generated_once_and_kept_private(tmp_path):
    show_key = ["-c", "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"]
    first = run(show_key, tmp_path).stdout.strip()
    second = run(show_key, tmp_path).stdout.strip()
    assert len(first) >= 50 and first == second  # every process and restart signs with the same key
    assert "insecure" not in first
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert run(show_key, tmp_path, SECRET_KEY="k" * 60).stdout.strip() == "k" * 60  # the environment wins


def test_the_default_sqlite_database_keeps_every_change_feed_trigger_after_migrating(tmp_path):
    # SQLite rebuilds a table to add some columns (0009's generated shot_at), and a rebuilt table has
    # lost its triggers: without them `make run`'s index would miss visibility changes and deletions.
    import sqlite3

    result = run(["manage.py", "migrate", "--noinput"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(tmp_path / "db.sqlite3") as database:
        triggers = {name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == {
        "gallery_region_feed_insert",
        "gallery_region_feed_delete",
        "gallery_region_feed_update",
        "gallery_image_feed_update",
        "gallery_image_feed_delete",
    }
