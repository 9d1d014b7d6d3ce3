"""The ``strangler`` command line as a user runs it."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "strangler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_verb_is_listed_in_help():
    result = run("--help")
    assert result.returncode == 0
    for verb in ("route", "sync", "parity", "relay", "consume", "dualwrite"):
        assert verb in result.stdout


def test_command_error_is_one_line_on_stderr_with_exit_2(tmp_path):
    result = run("sync", "verify", "nosuch", "--plan", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "missing.yaml" in result.stderr


def test_no_verb_prints_help_and_fails():
    result = run()
    assert result.returncode == 2
    assert "usage: strangler" in result.stderr
