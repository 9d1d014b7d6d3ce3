"""Start and stop the real processes router tests talk to: echo backends and the router."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]
OPERATOR_TOKEN = "operator-test-token"
ROUTER_TOKEN = "router-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0, ok=(200,)) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code in ok:
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up: {last}")


class Proc:
    def __init__(
        self, args: list[str], env: dict[str, str], url: str, log: Path
    ) -> None:
        self.args, self.env, self.url, self.log = args, env, url, log
        self.process: subprocess.Popen | None = None

    def start(self, ready_path: str = "/", ok=(200,)) -> Proc:
        self.process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log, "ab"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(self.url + ready_path, ok=ok)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def backend(name: str, tmp: Path, **extra_env: str) -> Proc:
    port = free_port()
    env = {**os.environ, "BACKEND_NAME": name, **extra_env}
    args = [
        sys.executable, "-m", "uvicorn", "tests.integration.router.backend_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    return Proc(args, env, f"http://127.0.0.1:{port}", tmp / f"backend-{name}.log")


def router(store: Path, tmp: Path, **env: str) -> Proc:
    port = free_port()
    full_env = {
        **os.environ,
        "STRANGLER_ROUTER_DIR": str(store),
        "STRANGLER_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "STRANGLER_ROUTER_TOKEN": ROUTER_TOKEN,
        "ROUTER_POLL_SECONDS": "0.2",
        **env,
    }
    args = [sys.executable, "-m", "router", "--port", str(port)]
    return Proc(args, full_env, f"http://127.0.0.1:{port}", tmp / "router.log")


@contextmanager
def running(
    *procs: Proc, ready: dict[Proc, tuple[str, tuple]] | None = None
) -> Iterator[None]:
    started: list[Proc] = []
    try:
        for proc in procs:
            path, ok = (ready or {}).get(proc, ("/", (200,)))
            proc.start(path, ok)
            started.append(proc)
        yield
    finally:
        for proc in reversed(started):
            proc.stop()


class _Session(requests.Session):
    """A session whose requests time out (10 s) unless told otherwise: tests never hang."""

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", 10)
        return super().request(method, url, **kwargs)


def session() -> requests.Session:
    return _Session()


http = session()
