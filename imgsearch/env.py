"""Small, strict readers for settings that come from the environment.

A typo in a deployment's environment should stop the process at start-up with a sentence that
names the variable, not surface later as a mysterious default.
"""

import os
from pathlib import Path


class ConfigError(ValueError):
    pass


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_json_object(name: str) -> dict:
    """A JSON object from the environment ({} when unset)."""
    import json

    raw = os.environ.get(name, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise ConfigError(f"{name} is not valid JSON ({error}).") from None
    if not isinstance(value, dict):
        raise ConfigError(f'{name} must be a JSON object, like {{"bucket_name": "photos"}}.')
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use true or false.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_float(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str, *, base_dir: Path, pool_size: int = 0, pool_timeout: float = 10.0) -> dict:
    """DATABASES['default'] from `postgres://user:pass@host:port/name` or `sqlite:///path` (dj-database-url).

    No connection outlives its request or task (CONN_MAX_AGE 0): `runserver`'s thread per request
    otherwise leaves one open connection per thread. With `pool_size` > 0 a PostgreSQL process
    borrows from psycopg's pool instead, at most `pool_size` connections at once; a request that
    finds them all busy waits `pool_timeout` seconds, then fails with OperationalError (a 503); while
    the database is unreachable it fails at once.
    A relative SQLite path is relative to `base_dir`.
    """
    import dj_database_url

    try:
        config = dj_database_url.parse(url, conn_max_age=0, conn_health_checks=True)
    except dj_database_url.UnknownSchemeError:
        scheme = url.split(":", 1)[0]
        raise ConfigError(f"DATABASE_URL scheme {scheme!r} is not supported; use postgres:// or sqlite:///.") from None
    except ValueError as error:
        raise ConfigError(f"DATABASE_URL could not be read ({error}).") from None
    config = dict(config)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        name = Path(config["NAME"] or "db.sqlite3")
        config["NAME"] = str(name if name.is_absolute() else base_dir / name)
    elif config["ENGINE"] == "django.db.backends.postgresql":
        # A host that drops packets would otherwise hold a connection attempt for minutes.
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
        if pool_size > 0:
            # Connections idle for a minute are closed, down to one per process. The pool refuses
            # requests at once while the database is away and is back within a second of it
            # (imgsearch/postgresql/base.py).
            config["ENGINE"] = "imgsearch.postgresql"
            config["OPTIONS"]["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": pool_timeout, "max_idle": 60}
    return config


def secret_key_file(path: Path) -> str:
    """The secret key kept in `path`, made (random, readable by this user only) on first use.

    Several processes may start at once (web, worker, indexer): the first to link its file in place
    wins and the others read that one, so they all sign with the same key.
    """
    import secrets

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(candidate)
    key = path.read_text().strip()
    if len(key) < 50:
        raise ConfigError(f"{path} holds a secret key shorter than 50 characters; delete it to make a new one.")
    return key
