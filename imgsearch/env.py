"""Small, strict readers for settings that come from the environment.

A typo in a deployment's environment should stop the process at start-up with a sentence that
names the variable, not surface later as a mysterious default.
"""
import os
from pathlib import Path
from urllib.parse import unquote, urlparse


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
        raise ConfigError(f"{name} must be a JSON object, like {{\"bucket_name\": \"photos\"}}.")
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


def env_float(name: str, default: float) -> float:
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


def database_from_url(url: str, *, base_dir: Path) -> dict:
    """Translate `postgres://user:pass@host:port/name` or `sqlite:///path` into DATABASES['default']."""
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "imgsearch",
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if path.startswith("//"):  # sqlite:////abs/path
            path = path[1:]
        elif path.startswith("/"):  # sqlite:///relative/path
            path = str(base_dir / path.lstrip("/"))
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path or str(base_dir / "db.sqlite3")}
    raise ConfigError(f"DATABASE_URL scheme {parsed.scheme!r} is not supported; use postgres:// or sqlite:///.")


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

