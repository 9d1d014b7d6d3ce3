#!/usr/bin/env python
"""The local stack: prepare every deployable, start its processes, supervise them.

``up`` migrates each database, seeds the monolith when it is empty, starts the processes in
order, waits until each answers its health check, runs the migration demo (``scripts/demo.py``;
``--no-demo`` skips it), prints where everything is, and stops them all on Ctrl-C or SIGTERM.
A process that dies stops the stack with its exit status.

Ports: monolith ``--port-base`` (default 8000, or ``$STRANGLER_PORT_BASE``), vote +1, choice
+2, router +80. The monolith, vote and choice also listen on a Unix socket under
``$STRANGLER_VAR_DIR/run/``, which the router uses instead of their ports; everything else
(relays, the monolith calling the services, tests) uses the ports. ``--reset`` deletes the
stack's state under ``$STRANGLER_VAR_DIR`` (databases, plan state, router store) first, so
the demo starts again from the ``monolith`` stage.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from strangler.routing.schema import (
    UNIX_PATH_MAX,
    Backend,
    ConfigError,
    dump_config,
    load_config,
)
from strangler.routing.store import RouteStore, StoreError

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    health_url: str | None = None
    prepare: list[list[str]] = field(default_factory=list)


def gunicorn(
    module: str, port: int, workers: int = 2, unix_socket: Path | None = None
) -> list[str]:
    # gthread keeps connections alive, so the router reuses its upstream connections
    # instead of connecting per request (docs/router.md, "Performance").
    argv = [
        PYTHON, "-m", "gunicorn", f"{module}.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "gthread", "--threads", "4",
        "--keep-alive", "5", "--access-logfile", "-", "--graceful-timeout", "10",
    ]  # fmt: skip
    if unix_socket is not None:
        # gunicorn removes a stale socket file when it starts and its own when it stops.
        argv += ["--bind", f"unix:{unix_socket}"]
    return argv


def manage(project: str, *args: str) -> list[str]:
    return [PYTHON, str(ROOT / project / "manage.py"), *args]


@dataclass(frozen=True)
class Ports:
    monolith: int
    vote: int
    choice: int
    router: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(monolith=base, vote=base + 1, choice=base + 2, router=base + 80)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{getattr(self, name)}"


def prepare_sockets(var: Path) -> dict[str, Path]:
    """Where the monolith, vote and choice listen besides their ports, for the router: over
    a Unix socket it spends less CPU per request than over TCP loopback (docs/router.md,
    "Performance"). Empty, with a note on stderr, when var/ is so deep that a path would
    not fit a socket address: then the router uses their ports."""
    run = var.absolute() / "run"
    paths = {name: run / f"{name}.sock" for name in DEPLOYABLES}
    if any(len(os.fsencode(path)) > UNIX_PATH_MAX for path in paths.values()):
        print(
            f"stack: {run} is too deep for a Unix socket path (at most {UNIX_PATH_MAX} "
            "bytes); the router reaches the monolith, vote and choice over TCP",
            file=sys.stderr,
        )
        return {}
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)  # gunicorn leaves its sockets writable by anyone
    return paths


def stack(
    args: argparse.Namespace,
    ports: Ports,
    router_config: Path,
    sockets: dict[str, Path],
) -> list[Process]:
    seed = [
        "seed_polls", "--if-empty", "--users", str(args.users), "--questions",
        str(args.questions), "--choices-per-question", "4", "--votes", str(args.votes),
        "--password", args.password,
    ]  # fmt: skip

    def serve(name: str, module: str) -> list[str]:
        return gunicorn(module, getattr(ports, name), unix_socket=sockets.get(name))

    return [
        Process(
            name="monolith",
            argv=serve("monolith", "monolith.config"),
            env={
                "DJANGO_SETTINGS_MODULE": "monolith.config.settings",
                "VOTE_SERVICE_URL": os.environ.get("VOTE_SERVICE_URL")
                or ports.url("vote"),
                "CHOICE_SERVICE_URL": os.environ.get("CHOICE_SERVICE_URL")
                or ports.url("choice"),
            },
            health_url=f"{ports.url('monolith')}/readyz",
            prepare=[
                manage("monolith", "migrate", "--noinput"),
                manage("monolith", *seed),
            ],
        ),
        Process(
            name="vote",
            argv=serve("vote", "extracted.vote_service.config"),
            env={"DJANGO_SETTINGS_MODULE": "extracted.vote_service.config.settings"},
            health_url=f"{ports.url('vote')}/readyz",
            prepare=[manage("extracted/vote_service", "migrate", "--noinput")],
        ),
        Process(
            name="choice",
            argv=serve("choice", "extracted.choice_service.config"),
            env={"DJANGO_SETTINGS_MODULE": "extracted.choice_service.config.settings"},
            health_url=f"{ports.url('choice')}/readyz",
            prepare=[manage("extracted/choice_service", "migrate", "--noinput")],
        ),
        *event_processes(ports),
        Process(
            name="router",
            argv=[PYTHON, "-m", "router", "--bootstrap", str(router_config)],
            env={"ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": str(ports.router)},
            health_url=f"{ports.url('router')}/_strangler/healthz",
        ),
    ]


def router_bootstrap(var: Path, ports: Ports, sockets: dict[str, Path]) -> Path:
    """The example router config, with the backends on this stack's ports and sockets.

    The router installs it only when its store is still empty (its first start on this
    var/): a store that already holds a config keeps it, sockets or not, until
    ``strangler route apply`` changes it."""
    example = ROOT / "router/config.example.yaml"
    if ports == Ports.from_base(8000) and not sockets:
        return example
    config = yaml.safe_load(example.read_text())
    for name in DEPLOYABLES:
        backend = config["backends"][name]
        backend["url"] = ports.url(name)
        if name in sockets:
            backend["socket"] = str(sockets[name])
    path = var / "router-bootstrap.yaml"
    path.write_text(
        "# Written by scripts/stack.py from router/config.example.yaml for this stack's\n"
        "# ports and sockets; the router installs it only when its store is empty.\n"
        + dump_config(config)
    )
    return path


def stale_router_store(store_dir: Path, bootstrap: Path) -> str | None:
    """The warning to print when the router's store already holds a config whose
    backends are not where this stack serves them (a var/ from before the Unix sockets,
    or another ``--port-base``), or lack the ``dry_run`` this stack's config gives them:
    the router keeps the stored version, and would go on using it. None when they match, or when there is no stored config yet (the
    router installs the bootstrap) or it cannot be read (the router says why itself)."""
    store = RouteStore(store_dir)
    try:
        version = store.current_version()
        if version is None:
            return None
        stored = load_config(store.read(version)).backends
    except (StoreError, ConfigError):
        return None
    wanted = load_config(bootstrap.read_text()).backends

    def address(backend: Backend | None) -> tuple[str | None, str | None]:
        return (backend.url, backend.socket) if backend else (None, None)

    def shown(backend: Backend | None) -> str:
        url, path = address(backend)
        return f"{url} via {path}" if path else str(url)

    moved = [
        f"{name} at {shown(stored.get(name))} (this stack: {shown(wanted[name])})"
        for name in DEPLOYABLES
        if name in wanted and address(stored.get(name)) != address(wanted[name])
    ]
    # A store from before the monolith said it runs the dry-run middleware: shadowed
    # writes it refused are never rechecked (docs/router.md, "Rechecking a refused write").
    undeclared = [
        name
        for name in DEPLOYABLES
        if name in wanted
        and wanted[name].dry_run
        and name in stored
        and not stored[name].dry_run
    ]
    problems = []
    if moved:
        problems.append(
            f"whose backends are not where this stack serves them: {'; '.join(moved)}"
        )
    if undeclared:
        problems.append(
            f"where {', '.join(undeclared)} {'lacks' if len(undeclared) == 1 else 'lack'}"
            " dry_run: true (this stack's config has it), so writes refused there under"
            " a shadow are never rechecked"
        )
    if not problems:
        return None
    return (
        f"stack: the router keeps its stored config (version {version}), "
        f"{'; and '.join(problems)}. To take this stack's backends: "
        f"STRANGLER_ROUTER_DIR={store_dir} .venv/bin/strangler route apply {bootstrap} "
        "--why 'the stack serves its backends elsewhere' "
        "(it also puts the example's routes back), or ./scripts/run --reset (starts the "
        "whole stack over)"
    )


DEPLOYABLES = {
    "monolith": "monolith.config.settings",
    "vote": "extracted.vote_service.config.settings",
    "choice": "extracted.choice_service.config.settings",
}
# Who receives whose events: the services follow the monolith (forward path), the monolith
# follows the services (reverse path), the vote service keeps its choice projection.
SUBSCRIBERS = {
    "monolith": ["vote", "choice"],
    "vote": ["monolith"],
    "choice": ["monolith", "vote"],
}


def event_processes(ports: Ports) -> list[Process]:
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
            for name, settings in DEPLOYABLES.items()
        ]
    for name, settings in DEPLOYABLES.items():
        env = {"DJANGO_SETTINGS_MODULE": settings}
        if not amqp:
            env["STRANGLER_EVENT_TARGETS"] = ",".join(
                f"{ports.url(sub)}/_strangler/internal/events"
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


def port_base(text: str) -> int:
    """--port-base / STRANGLER_PORT_BASE: the monolith's port; the router's is 80 above."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535 - 80:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port base (a whole number from 1 to {65535 - 80}: the "
            "router listens 80 above it); set by --port-base or STRANGLER_PORT_BASE"
        )
    return value


def local_secret(var: Path, name: str) -> str:
    """An operator secret from the environment, else one generated once under var/."""
    if os.environ.get(name):
        return os.environ[name]
    path = var / name.lower()
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def claim_var(var: Path, ports: Ports) -> TextIO:
    """Hold ``var/stack.lock`` for as long as this stack runs; the open file is the hold.
    Two stacks on one var/ would share its databases, plan state and router store, and
    the second's gunicorn would remove the first's Unix sockets and take their paths. The
    lock goes with the process that holds it, a killed one too, so nothing is left to
    clean up. Refused: exit with the holder named, before ``--reset`` touches anything."""
    var.mkdir(parents=True, exist_ok=True)
    lock = open(var / "stack.lock", "a+")  # noqa: SIM115 - held until the stack stops
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "a process that has not said which"
        lock.close()
        raise SystemExit(
            f"stack: {var} is in use by another stack ({holder}). Stop that one, or "
            "give this one its own state: STRANGLER_VAR_DIR=/another/dir ./scripts/run"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}, router on port {ports.router}\n")
    lock.flush()
    return lock


def ports_free(ports: Ports) -> None:
    """Refuse to start when a port is taken: a health check would reach the other process."""
    for name in ("monolith", "vote", "choice", "router"):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", getattr(ports, name)))
            except OSError:
                raise SystemExit(
                    f"stack: port {getattr(ports, name)} ({name}) is in use; is another "
                    "stack running? Stop it, or pick other ports with --port-base"
                ) from None


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


# What ``--reset`` removes: everything the stack and the demo keep, not the dev keys/secrets.
STATE = ("*.sqlite3", "*.sqlite3-wal", "*.sqlite3-shm", "plan", "router", "prometheus",
         "demo", "logs", "router-bootstrap.yaml")  # fmt: skip


def reset(var: Path) -> None:
    for pattern in STATE:
        for path in var.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    print(f"stack: --reset: removed the stack's state under {var}", file=sys.stderr)


def demo_skip_reason(var: Path) -> str | None:
    """Why the demo must not run on this var/, or None when the vote plan is untouched."""
    if os.environ.get("DATABASE_URL") or os.environ.get("AMQP_URL"):
        return (
            "the demo runs on the embedded default only (DATABASE_URL/AMQP_URL is set)"
        )
    state = var / "plan" / "vote.json"
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    if data.get("stage") == "monolith" and not data.get("pending"):
        return None
    where = f"at `{data.get('stage')}`" + (
        " with an incomplete transition" if data.get("pending") else ""
    )
    return (
        f"{var} already holds a demo's state: the vote plan is {where}. "
        "To watch the demo again from the start: ./scripts/run --reset "
        "(or stop the stack and rm -rf var/)"
    )


def ready_text(var: Path, ports: Ports, args: argparse.Namespace) -> str:
    router = ports.url("router")
    env = var / "demo" / "env.sh"
    lines = [
        "",
        "stack: ready.",
        f"  public entry   {router}/api/questions/  (the router)",
        f"  monolith       {ports.url('monolith')}   vote :{ports.vote}   "
        f"choice :{ports.choice}",
        f"  router status  {router}/_strangler/  (operator token in "
        f"{var / 'strangler_operator_token'})",
        f"  get a token    curl -X POST -H 'Content-Type: application/json' "
        f'-d \'{{"username": "user0001", "password": "{args.password}"}}\' '
        f"{router}/api/auth/token/",
    ]
    if env.exists():
        lines += [
            "  try next       (in another shell, from the repository)",
            f"    source {env}",
            f"    curl -si '{router}/api/votes/?question=1' | grep -i x-strangler-route",
            "    strangler route list",
            "    strangler plan history vote",
            "    strangler plan rollback vote --dry-run    # then without --dry-run",
        ]
    lines.append("  Ctrl-C stops everything.")
    return "\n".join(lines)


def up(args: argparse.Namespace) -> int:
    var = Path(os.environ.get("STRANGLER_VAR_DIR", ROOT / "var"))
    ports = Ports.from_base(args.port_base)
    ports_free(ports)
    lock = claim_var(var, ports)  # held until the end of the stack, below
    if args.reset:
        reset(var)
    sockets = prepare_sockets(var)
    shared_env = {
        "STRANGLER_VAR_DIR": str(var),
        "STRANGLER_ROUTER_DIR": os.environ.get(
            "STRANGLER_ROUTER_DIR", str(var / "router")
        ),
        "STRANGLER_ROUTER_TOKEN": local_secret(var, "STRANGLER_ROUTER_TOKEN"),
        "STRANGLER_OPERATOR_TOKEN": local_secret(var, "STRANGLER_OPERATOR_TOKEN"),
    }
    running: list[tuple[Process, subprocess.Popen]] = []
    demo: subprocess.Popen | None = None
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    skip = "--no-demo" if args.no_demo else demo_skip_reason(var)
    # With the demo on screen, the processes' access logs go to files instead.
    logs = var / "logs" if skip is None else None
    if logs:
        logs.mkdir(exist_ok=True)
        print(f"stack: process logs go to {logs}/", file=sys.stderr)
    try:
        router_config = router_bootstrap(var, ports, sockets)
        stale = stale_router_store(
            Path(shared_env["STRANGLER_ROUTER_DIR"]), router_config
        )
        if stale:
            print(stale, file=sys.stderr)
        for spec in stack(args, ports, router_config, sockets):
            env = {**os.environ, **shared_env, **spec.env}
            metrics_dir = var / "prometheus" / spec.name
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            out = open(logs / f"{spec.name}.log", "ab") if logs else None  # noqa: SIM115
            for command in spec.prepare:
                print(f"stack: {spec.name}: {' '.join(command[1:])}", file=sys.stderr)
                subprocess.run(
                    command, env=env, check=True, cwd=ROOT, stdout=out, stderr=out
                )
            proc = subprocess.Popen(
                spec.argv, env=env, cwd=ROOT, stdout=out, stderr=out
            )
            running.append((spec, proc))
            if spec.health_url:
                wait_healthy(proc, spec.health_url)
            print(f"stack: {spec.name} is up (pid {proc.pid})", file=sys.stderr)
        if skip is None:
            demo = subprocess.Popen(
                [PYTHON, str(ROOT / "scripts/demo.py"), *demo_args(args, ports)],
                env={**os.environ, **shared_env},
                cwd=ROOT,
            )
        else:
            if skip != "--no-demo":
                print(f"stack: skipping the migration demo: {skip}", file=sys.stderr)
            if args.exit_after_demo:
                return 0
            print(ready_text(var, ports, args), file=sys.stderr)
        while not stopping:
            for spec, proc in running:
                if proc.poll() is not None:
                    print(
                        f"stack: {spec.name} exited with {proc.returncode}",
                        file=sys.stderr,
                    )
                    return proc.returncode or 1
            if demo is not None and demo.poll() is not None:
                code, demo = demo.returncode, None
                if code:
                    print(f"stack: the demo failed (exit {code})", file=sys.stderr)
                if args.exit_after_demo or code:
                    return code
                print(ready_text(var, ports, args), file=sys.stderr)
            time.sleep(0.5)
        return 0
    finally:
        if demo is not None and demo.poll() is None:
            demo.terminate()
            demo.wait(timeout=30)
        for _, proc in reversed(running):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(running):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        lock.close()  # var/ is free for the next stack


def demo_args(args: argparse.Namespace, ports: Ports) -> list[str]:
    out = ["--router", ports.url("router"), "--password", args.password,
           "--users", str(min(args.users, 50))]  # fmt: skip
    if args.fast:
        out.append("--fast")
    if args.stop_at:
        out += ["--stop-at", args.stop_at]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="prepare and run the whole local stack")
    up_parser.add_argument("--users", type=int, default=50)
    up_parser.add_argument("--questions", type=int, default=20)
    up_parser.add_argument("--votes", type=int, default=500)
    up_parser.add_argument("--password", default="demo-password")
    up_parser.add_argument(
        "--port-base",
        type=port_base,
        # A string default goes through ``type`` too: a bad STRANGLER_PORT_BASE is
        # refused with the same message as a bad --port-base.
        default=os.environ.get("STRANGLER_PORT_BASE") or "8000",
        help="monolith port; vote +1, choice +2, router +80 (default 8000)",
    )
    up_parser.add_argument(
        "--reset",
        action="store_true",
        help="delete the stack's databases, plan state and routes under var/ first",
    )
    demo = up_parser.add_argument_group("the migration demo (scripts/demo.py)")
    demo.add_argument(
        "--no-demo", action="store_true", help="only start the stack; run no demo"
    )
    demo.add_argument("--fast", action="store_true", help="demo with less traffic")
    demo.add_argument("--stop-at", metavar="STAGE", help="demo stops at this stage")
    demo.add_argument(
        "--exit-after-demo",
        action="store_true",
        help="stop the stack when the demo ends, with its exit code (tests, CI)",
    )
    args = parser.parse_args()
    return up(args)


if __name__ == "__main__":
    sys.exit(main())
