"""The router bench (scripts/bench/router) leaves nothing behind when it is SIGKILLed: its
servers die with it, and the next run drops the scratch database of a bench that is gone
while a running bench's stays."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest

from tests import router_bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    return router_bench.load("bench_router_cleanup")


def _databases(bench) -> set[str]:
    conn = psycopg2.connect(bench._db_url("postgres"))
    try:
        cur = conn.cursor()
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'h_bench%'")
        return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie still answers kill(0); its state says it has exited.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_killed_benchs_servers_stop_with_it(bench):
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import importlib.machinery, importlib.util, sys, time\n"
         "loader = importlib.machinery.SourceFileLoader('b', sys.argv[1])\n"
         "spec = importlib.util.spec_from_loader('b', loader)\n"
         "b = importlib.util.module_from_spec(spec); loader.exec_module(b)\n"
         "proc = b.spawn(['sleep', '120'])\n"
         "print(proc.pid, flush=True); time.sleep(120)\n",
         str(router_bench.BENCH)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        server = int(parent.stdout.readline())
        assert not _gone(server, 0.3)  # it runs while the bench does
        parent.kill()
        parent.wait(10)
        assert _gone(server), f"server {server} outlived its SIGKILLed bench"
    finally:
        parent.kill()
        parent.wait(10)


def test_the_scratch_database_of_a_gone_bench_is_dropped_a_live_ones_kept(bench):
    dead_pid = subprocess.Popen(["true"])  # a pid that has exited
    dead_pid.wait()
    alive = subprocess.Popen(["sleep", "60"])
    dead_name = f"h_bench_router_{dead_pid.pid}"
    live_name = f"h_bench_router_{alive.pid}"
    try:
        for name in (dead_name, live_name):
            bench._admin(f'DROP DATABASE IF EXISTS "{name}"')
            bench._admin(f'CREATE DATABASE "{name}"')
        dropped = bench.drop_stale_databases()
        left = _databases(bench)
        assert dead_name in dropped and dead_name not in left
        assert live_name in left and live_name not in dropped
    finally:
        alive.kill()
        alive.wait()
        for name in (dead_name, live_name):
            bench._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_scratch_folder_of_a_gone_bench_is_removed_a_live_ones_kept(
    bench, tmp_path
):
    dead = subprocess.Popen(["true"])  # a pid that has exited
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        gone = tmp_path / f"strangler-bench-{dead.pid}-abc"
        running = tmp_path / f"strangler-probe-{alive.pid}-def"
        other = tmp_path / "strangler-notes-1-x"  # not a bench's folder
        for folder in (gone, running, other):
            (folder / "router").mkdir(parents=True)
            (folder / "floor.py").write_text("x")
        removed = bench.drop_stale_scratch(tmp_path)
        assert removed == [gone]
        assert not gone.exists()
        assert running.exists() and other.exists()
    finally:
        alive.kill()
        alive.wait()


def test_the_bench_names_its_scratch_folders_by_its_pid(bench):
    folder = bench.scratch_dir("bench")
    try:
        assert folder.name.startswith(f"strangler-bench-{os.getpid()}-")
        assert bench._SCRATCH.match(folder.name).group(1) == str(os.getpid())
    finally:
        folder.rmdir()
