"""The router's numeric environment settings: a bad value stops it with a message that
names the variable, before it serves anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from router.app import _env_seconds

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("raw", ["abc", "-1", "nan", "inf", "1s"])
def test_a_bad_value_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("ROUTER_OWNER_WAIT_SECONDS", raw)
    with pytest.raises(SystemExit) as stopped:
        _env_seconds("ROUTER_OWNER_WAIT_SECONDS", 3.0)
    assert "ROUTER_OWNER_WAIT_SECONDS" in str(stopped.value)
    assert repr(raw) in str(stopped.value)


@pytest.mark.parametrize(
    ("raw", "seconds"), [(None, 3.0), ("", 3.0), ("0", 0.0), ("2.5", 2.5)]
)
def test_good_values_and_the_default(monkeypatch, raw, seconds):
    if raw is None:
        monkeypatch.delenv("ROUTER_OWNER_WAIT_SECONDS", raising=False)
    else:
        monkeypatch.setenv("ROUTER_OWNER_WAIT_SECONDS", raw)
    assert _env_seconds("ROUTER_OWNER_WAIT_SECONDS", 3.0) == seconds


def _router(
    env: dict[str, str], *args: str, store: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=ROOT,
        env={**os.environ, "STRANGLER_ROUTER_DIR": str(store or "/nonexistent"), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "args", "said"),
    [
        ({"ROUTER_WORKERS": "abc"}, (), "ROUTER_WORKERS='abc' is not a number of workers"),
        ({"ROUTER_WORKERS": "-3"}, (), "ROUTER_WORKERS='-3' is not a number of workers"),
        ({"ROUTER_PORT": "x"}, (), "ROUTER_PORT='x' is not a port"),
        ({"ROUTER_PORT": "70000"}, (), "ROUTER_PORT='70000' is not a port"),
        ({"ROUTER_ACCESS_LOG": "maybe"}, ("--port", "free"),
         "ROUTER_ACCESS_LOG='maybe' is neither on"),
        ({}, ("--workers", "0"), "argument --workers: '0' is not a number of workers"),
        ({"ROUTER_ENGINE": "bogus"}, (), "ROUTER_ENGINE='bogus' is neither c"),
        ({}, ("--port", "0"), "argument --port: '0' is not a port"),
    ],
)  # fmt: skip
def test_a_bad_setting_stops_the_router_with_its_name_and_no_traceback(
    env, args, said, tmp_path
):
    if "free" in args:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = str(probe.getsockname()[1])
        args = tuple(free if a == "free" else a for a in args)
    done = _router(env, *args, store=tmp_path / "store")
    assert done.returncode != 0
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()


def test_a_port_in_use_is_said_once_whatever_the_workers():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for workers in ("1", "3"):
            done = _router({"ROUTER_WORKERS": workers}, "--port", port)
            assert done.returncode == 2
            assert done.stderr.count(f"cannot listen on 127.0.0.1:{port}") == 1
            assert "Address already in use" in done.stderr
            assert "Traceback" not in done.stderr


def test_asking_for_the_c_data_path_without_it_built_says_how_to_build_it(monkeypatch):
    from router import engine

    monkeypatch.setattr(engine, "Engine", None)
    monkeypatch.setenv("ROUTER_ENGINE", "c")
    with pytest.raises(SystemExit) as stopped:
        engine.wanted()
    assert "scripts/build_engine" in str(stopped.value)
    monkeypatch.delenv("ROUTER_ENGINE")
    assert engine.wanted() is False  # not built, not asked for: the Python path
