"""scripts/build_engine: a compiler that is not there is said, not a traceback, and the
README's commands go on (exit 0) with the router on its Python path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_a_cc_that_is_not_there_is_named_and_the_build_step_goes_on(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "router").mkdir()
    shutil.copy(ROOT / "scripts" / "build_engine", tmp_path / "scripts")
    shutil.copy(ROOT / "router" / "_engine.c", tmp_path / "router")
    done = subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "build_engine"), "--force"],
        env={**os.environ, "CC": "/nonexistent/cc"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    assert "CC='/nonexistent/cc' is not a program found on PATH" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / "router").glob("_engine*.so"))
