#!/usr/bin/env python
"""The local stack: prepare every deployable, start its processes, supervise them.

``up`` migrates each database, seeds the monolith when it is empty, starts the processes in
order, waits until each answers its health check, prints where everything is, and stops them
all on Ctrl-C or SIGTERM. A process that dies stops the stack with its exit status.
"""

from __future__ import annotations

import argparse
import os
import secrets
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
        Process(
            name="vote",
            argv=gunicorn("extracted.vote_service.config", 8001),
            env={"DJANGO_SETTINGS_MODULE": "extracted.vote_service.config.settings"},
            health_url="http://127.0.0.1:8001/readyz",
            prepare=[manage("extracted/vote_service", "migrate", "--noinput")],
        ),
        Process(
            name="choice",
            argv=gunicorn("extracted.choice_service.config", 8002),
            env={"DJANGO_SETTINGS_MODULE": "extracted.choice_service.config.settings"},
            health_url="http://127.0.0.1:8002/readyz",
            prepare=[manage("extracted/choice_service", "migrate", "--noinput")],
        ),
        *event_processes(),
        Process(
            name="router",
            argv=[
                PYTHON,
                "-m",
                "router",
                "--bootstrap",
                str(ROOT / "router/config.example.yaml"),
            ],
            env={"ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": "8080"},
            health_url="http://127.0.0.1:8080/_strangler/healthz",
        ),
    ]


DEPLOYABLES = {
    "monolith": ("monolith.config.settings", "http://127.0.0.1:8000"),
    "vote": ("extracted.vote_service.config.settings", "http://127.0.0.1:8001"),
    "choice": ("extracted.choice_service.config.settings", "http://127.0.0.1:8002"),
}
# Who receives whose events: the services follow the monolith (forward path), the monolith
# follows the services (reverse path), the vote service keeps its choice projection.
SUBSCRIBERS = {
    "monolith": ["vote", "choice"],
    "vote": ["monolith"],
    "choice": ["monolith", "vote"],
}


def event_processes() -> list[Process]:
    """A relay per producer; with RabbitMQ (AMQP_URL set) also a consumer per deployable,
    started first so every queue is bound before anything is published. Without it, the
    relays POST to each subscriber's /_strangler/internal/events. Every entity's dual-write
    mode starts ``off``, so the relays idle until a plan turns the event path on."""
    amqp = bool(os.environ.get("AMQP_URL"))
    processes = []
    if amqp:
        processes += [
            Process(
                name=f"consume-{name}",
                argv=[PYTHON, "-m", "strangler", "consume", "--service", name],
                env={"DJANGO_SETTINGS_MODULE": settings},
            )
            for name, (settings, _) in DEPLOYABLES.items()
        ]
    for name, (settings, _) in DEPLOYABLES.items():
        env = {"DJANGO_SETTINGS_MODULE": settings}
        if not amqp:
            env["STRANGLER_EVENT_TARGETS"] = ",".join(
                f"{DEPLOYABLES[sub][1]}/_strangler/internal/events"
                for sub in SUBSCRIBERS[name]
            )
        processes.append(
            Process(
                name=f"relay-{name}",
                argv=[PYTHON, "-m", "strangler", "relay", "--producer", name],
                env=env,
            )
        )
    return processes


def local_secret(var: Path, name: str) -> str:
    """An operator secret from the environment, else one generated once under var/."""
    if os.environ.get(name):
        return os.environ[name]
    path = var / name.lower()
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


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
    var.mkdir(parents=True, exist_ok=True)
    shared_env = {
        "STRANGLER_VAR_DIR": str(var),
        "STRANGLER_ROUTER_DIR": os.environ.get(
            "STRANGLER_ROUTER_DIR", str(var / "router")
        ),
        "STRANGLER_ROUTER_TOKEN": local_secret(var, "STRANGLER_ROUTER_TOKEN"),
        "STRANGLER_OPERATOR_TOKEN": local_secret(var, "STRANGLER_OPERATOR_TOKEN"),
    }
    running: list[tuple[Process, subprocess.Popen]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for spec in stack(args):
            env = {**os.environ, **shared_env, **spec.env}
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
            "  public entry   http://127.0.0.1:8080/api/questions/  (the router)\n"
            "  monolith       http://127.0.0.1:8000   vote :8001   choice :8002\n"
            f"  router status  http://127.0.0.1:8080/_strangler/  (operator token in "
            f"{var / 'strangler_operator_token'})\n"
            f"  get a token    curl -X POST -H 'Content-Type: application/json' "
            f'-d \'{{"username": "user0001", "password": "{args.password}"}}\' '
            "http://127.0.0.1:8080/api/auth/token/\n"
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
