"""A bad or missing setting stops the monolith at start with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = [sys.executable, "monolith/manage.py", "check"]


def run_check(tmp_path, **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "SECRET_KEY",
            "STRANGLER_DEV_DEFAULTS",
            "JWT_PRIVATE_KEY_FILE",
        }
    }
    base["STRANGLER_VAR_DIR"] = str(tmp_path)
    base.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        CHECK,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_embedded_default_starts_with_no_environment(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "keys" / "jwt_private.pem").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "postgres://u@localhost/db"}, "SECRET_KEY: is required"),
        (
            {"DATABASE_URL": "postgres://u@localhost/db", "SECRET_KEY": "x" * 40},
            "JWT_PRIVATE_KEY_FILE: is required but not set",
        ),
        ({"DEBUG": "sometimes"}, "DEBUG: must be a boolean"),
        (
            {"DATABASE_URL": "bogus://nowhere", "SECRET_KEY": "x" * 40},
            "DATABASE_URL: is not a valid database URL",
        ),
        ({"JWT_TTL_SECONDS": "soon"}, "JWT_TTL_SECONDS: must be an integer"),
    ],
)
def test_bad_setting_fails_at_start_naming_the_variable(tmp_path, env, message):
    result = run_check(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr
