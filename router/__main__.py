"""``python -m router``: serve the router (``router.server`` on uvloop).

Environment: ``STRANGLER_ROUTER_DIR`` (config store), ``ROUTER_HOST`` / ``ROUTER_PORT``
(default 127.0.0.1:8080), ``ROUTER_WORKERS`` (default 1), ``STRANGLER_OPERATOR_TOKEN``,
``STRANGLER_ROUTER_TOKEN``, ``ROUTER_ACCESS_LOG`` (1/0). ``--bootstrap FILE`` makes FILE
version 1 when the store is still empty. With several workers each process binds the port
with SO_REUSEPORT and the kernel spreads connections; the parent only forwards signals.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import traceback

from router import engine
from router.app import create_app
from router.server import bind, run
from router.workers import ENV as SHARED_ENV
from router.workers import make_folder
from strangler.routing.schema import ConfigError
from strangler.routing.store import RouteStore, StoreError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("ROUTER_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port",
        type=_bounded("a port", 1, 65535),
        default=_env_int("ROUTER_PORT", 8080, "a port", 1, 65535),
    )
    parser.add_argument(
        "--workers",
        type=_bounded("a number of workers", 1, 256),
        default=_env_int("ROUTER_WORKERS", 1, "a number of workers", 1, 256),
    )
    parser.add_argument(
        "--bootstrap", help="config file to install when the store is empty"
    )
    args = parser.parse_args(argv)
    engine.wanted()  # a bad ROUTER_ENGINE is refused before anything listens
    if args.bootstrap:
        store = RouteStore()
        if store.current_version() is None:
            try:
                text = open(args.bootstrap, encoding="utf-8").read()  # noqa: SIM115
                store.commit(
                    text,
                    action=f"bootstrap {args.bootstrap}",
                    why="router first start",
                    who="router",
                    expect_parent=None,
                )
            except (OSError, ConfigError, StoreError) as exc:
                print(f"router: --bootstrap {args.bootstrap}: {exc}", file=sys.stderr)
                return 2
    try:
        # Bound here, before any worker starts: a taken port or an unknown host is said
        # once, plainly, rather than as a traceback per worker.
        bind(args.host, args.port, reuse_port=args.workers > 1).close()
    except OSError as exc:
        print(
            f"router: cannot listen on {args.host}:{args.port} (ROUTER_HOST/"
            f"ROUTER_PORT or --host/--port): {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    if args.workers <= 1:
        run(create_app, bind(args.host, args.port, reuse_port=False))
        return 0
    return _supervise(args.host, args.port, args.workers)


def _bounded(what: str, low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        value = _whole(text)
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {what} (a whole number from {low} to {high})"
            )
        return value

    return parse


def _env_int(name: str, default: int, what: str, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = _whole(raw)
    if value is None or not low <= value <= high:
        raise SystemExit(
            f"router: {name}={raw!r} is not {what} (a whole number from {low} to "
            f"{high})"
        )
    return value


def _whole(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _supervise(host: str, port: int, workers: int) -> int:
    """Fork the workers, pass SIGTERM/SIGINT on, and exit when they all have. The
    workers publish their figures in a folder of this run (router.workers), which goes
    when they have all exited."""
    folder = make_folder()
    os.environ[SHARED_ENV] = str(folder)
    try:
        return _fork_and_wait(host, port, workers)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fork_and_wait(host: str, port: int, workers: int) -> int:
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run(create_app, bind(host, port, reuse_port=True))
            except BaseException:
                traceback.print_exc()
                code = 1
            os._exit(code)
        children.append(pid)

    def forward(signum, _frame) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        failed += os.waitstatus_to_exitcode(status) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
