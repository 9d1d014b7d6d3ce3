#!/usr/bin/env python
"""The local stack: prepare every deployable, start its processes, supervise them.

``up`` migrates each database, seeds the monolith when it is empty, starts the processes in
order, waits until each answers its health check, prints where everything is, and stops them
all on Ctrl-C or SIGTERM. A process that dies stops the stack with its exit status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    health_url: str | None = None
    prepare: list[list[str]] = field(default_factory=list)


def gunicorn(module: str, port: int, workers: int = 2) -> list[str]:
    return [
        PYTHON, "-m", "gunicorn", f"{module}.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", "4", "--access-logfile", "-",
        "--graceful-timeout", "10",
    ]  # fmt: skip


def manage(project: str, *args: str) -> list[str]:
    return [PYTHON, str(ROOT / project / "manage.py"), *args]


def stack(args: argparse.Namespace) -> list[Process]:
    seed = [
        "seed_polls", "--if-empty", "--users", str(args.users), "--questions",
        str(args.questions), "--choices-per-question", "4", "--votes", str(args.votes),
        "--password", args.password,
    ]  # fmt: skip
    return [
        Process(
            name="monolith",
            argv=gunicorn("monolith.config", 8000),
            env={"DJANGO_SETTINGS_MODULE": "monolith.config.settings"},
            health_url="http://127.0.0.1:8000/readyz",
            prepare=[
                manage("monolith", "migrate", "--noinput"),
                manage("monolith", *seed),
            ],
        ),
    ]


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"stack: process exited with {proc.returncode} before {url} answered"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URL
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"stack: {url} did not answer within {timeout:.0f} s")


def up(args: argparse.Namespace) -> int:
    var = Path(os.environ.get("STRANGLER_VAR_DIR", ROOT / "var"))
    running: list[tuple[Process, subprocess.Popen]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for spec in stack(args):
            env = {**os.environ, **spec.env}
            metrics_dir = var / "prometheus" / spec.name
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            for command in spec.prepare:
                print(f"stack: {spec.name}: {' '.join(command[1:])}", file=sys.stderr)
                subprocess.run(command, env=env, check=True, cwd=ROOT)
            proc = subprocess.Popen(spec.argv, env=env, cwd=ROOT)
            running.append((spec, proc))
            if spec.health_url:
                wait_healthy(proc, spec.health_url)
            print(f"stack: {spec.name} is up (pid {proc.pid})", file=sys.stderr)
        print(
            "\nstack: ready.\n"
            "  monolith API   http://127.0.0.1:8000/api/questions/\n"
            f"  get a token    curl -X POST -H 'Content-Type: application/json' "
            f'-d \'{{"username": "user0001", "password": "{args.password}"}}\' '
            "http://127.0.0.1:8000/api/auth/token/\n"
            "  Ctrl-C stops everything.",
            file=sys.stderr,
        )
        while not stopping:
            for spec, proc in running:
                if proc.poll() is not None:
                    print(
                        f"stack: {spec.name} exited with {proc.returncode}",
                        file=sys.stderr,
                    )
                    return proc.returncode or 1
            time.sleep(0.5)
        return 0
    finally:
        for _, proc in reversed(running):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(running):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="prepare and run the whole local stack")
    up_parser.add_argument("--users", type=int, default=50)
    up_parser.add_argument("--questions", type=int, default=20)
    up_parser.add_argument("--votes", type=int, default=500)
    up_parser.add_argument("--password", default="demo-password")
    args = parser.parse_args()
    return up(args)


if __name__ == "__main__":
    sys.exit(main())
