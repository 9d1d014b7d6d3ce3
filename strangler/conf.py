"""Typed readers for environment variables that fail loudly, naming the variable.

Every deployable's settings module reads its environment through these helpers, so a bad
or missing value stops the process at start with ``ImproperlyConfigured: NAME: why``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

REPO_ROOT = Path(__file__).resolve().parent.parent
_env = environ.Env()
_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "sqlite"}


def _fail(name: str, why: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}: {why}")


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise _fail(name, "is required but not set")
        return default
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _fail(name, f"must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise _fail(name, f"must be at least {minimum}, got {value}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise _fail(name, f"must be a boolean (1/0, true/false), got {raw!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def var_dir() -> Path:
    """Where the embedded default keeps its SQLite files, dev keys and secrets."""
    path = Path(env_str("STRANGLER_VAR_DIR", str(REPO_ROOT / "var")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_embedded() -> bool:
    """True when no DATABASE_URL is set: the single-machine default."""
    return not os.environ.get("DATABASE_URL")


def dev_defaults() -> bool:
    """True when missing secrets may be generated under var/: the embedded default, or a
    development/test run that opts in with ``STRANGLER_DEV_DEFAULTS=1``."""
    return is_embedded() or env_bool("STRANGLER_DEV_DEFAULTS", False)


def database(name: str, *, var_name: str = "DATABASE_URL") -> dict[str, Any]:
    """The ``DATABASES["default"]`` dict: PostgreSQL from the URL, SQLite under var/."""
    raw = os.environ.get(var_name)
    if not raw:
        # Several gunicorn workers and relays share each file: WAL lets readers run beside
        # the writer, and IMMEDIATE transactions take the write lock up front, so a writer
        # waits for the busy timeout instead of failing with "database is locked" when a
        # read-then-write transaction cannot upgrade its lock.
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(var_dir() / f"{name}.sqlite3"),
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in _SCHEMES:
        raise _fail(
            var_name,
            f"is not a valid database URL (scheme {scheme!r}; use postgres:// or sqlite:///)",
        )
    try:
        config = _env.db_url_config(raw)
    except Exception as exc:
        raise _fail(var_name, f"is not a valid database URL ({exc})") from None
    if config["ENGINE"] == "django.db.backends.postgresql" and not config.get("NAME"):
        raise _fail(var_name, "names no database (expected postgres://user@host/NAME)")
    config.setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
    config["CONN_HEALTH_CHECKS"] = True
    return config


def secret_key() -> str:
    """SECRET_KEY from the environment; the embedded default keeps a generated one in var/."""
    value = os.environ.get("SECRET_KEY")
    if value:
        if len(value) < 32:
            raise _fail("SECRET_KEY", "must be at least 32 characters long")
        return value
    if not dev_defaults():
        raise _fail("SECRET_KEY", "is required when DATABASE_URL is set")
    path = var_dir() / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()
