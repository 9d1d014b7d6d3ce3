"""strangler.conf: every bad or missing value names its variable."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from strangler import conf


def test_env_int_names_the_variable_on_garbage(monkeypatch):
    monkeypatch.setenv("WORKERS", "two")
    with pytest.raises(
        ImproperlyConfigured, match=r"^WORKERS: must be an integer, got 'two'"
    ):
        conf.env_int("WORKERS", 1)


def test_env_int_enforces_minimum(monkeypatch):
    monkeypatch.setenv("WORKERS", "0")
    with pytest.raises(ImproperlyConfigured, match="WORKERS: must be at least 1"):
        conf.env_int("WORKERS", 1, minimum=1)


def test_env_bool_accepts_common_spellings_and_rejects_others(monkeypatch):
    monkeypatch.setenv("FLAG", "Yes")
    assert conf.env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "off")
    assert conf.env_bool("FLAG", True) is False
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG: must be a boolean"):
        conf.env_bool("FLAG", True)


def test_env_str_required_without_default(monkeypatch):
    monkeypatch.delenv("NEEDED", raising=False)
    with pytest.raises(ImproperlyConfigured, match="NEEDED: is required but not set"):
        conf.env_str("NEEDED")


def test_database_defaults_to_sqlite_under_var(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path))
    config = conf.database("vote")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "vote.sqlite3")


def test_database_reads_postgres_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://vote:pw@db.internal:5433/vote")
    config = conf.database("vote")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == (
        "db.internal",
        5433,
        "vote",
        "vote",
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("nonsense://x/y", "DATABASE_URL: is not a valid database URL"),
        ("postgres://user@host:5432/", "DATABASE_URL: names no database"),
    ],
)
def test_database_rejects_bad_urls_naming_the_variable(monkeypatch, url, why):
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ImproperlyConfigured, match=why):
        conf.database("monolith")


def test_secret_key_required_outside_dev_defaults(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("STRANGLER_DEV_DEFAULTS", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY: is required"):
        conf.secret_key()


def test_secret_key_too_short_is_refused(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY: must be at least 32"):
        conf.secret_key()


def test_embedded_secret_key_is_generated_once_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path))
    first = conf.secret_key()
    assert len(first) >= 50
    assert conf.secret_key() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
