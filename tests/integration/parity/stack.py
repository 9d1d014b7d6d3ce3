"""Real monolith processes on scratch PostgreSQL databases, for the parity integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import requests

ROOT = Path(__file__).resolve().parents[3]


def server_url(database: str) -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{database}"))


def admin(sql: str, *params: object) -> list[tuple]:
    with closing(psycopg2.connect(server_url("postgres"))) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []


def query(database: str, sql: str, *params: object) -> list[tuple]:
    with closing(psycopg2.connect(server_url(database))) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []


def drop(database: str) -> None:
    admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str, project: str = "monolith") -> None:
    """``PROJECT/manage.py ARGS`` (the monolith's, or ``extracted/vote_service``'s)."""
    subprocess.run(
        [sys.executable, str(ROOT / project / "manage.py"), *args],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )


def strangler(env: dict[str, str], *args: str) -> str:
    """The real ``strangler`` CLI in a process of its own; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "strangler", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise AssertionError(f"strangler {' '.join(args)}: {done.stderr}")
    return done.stdout


class Server:
    """A gunicorn process serving a WSGI app on an ephemeral port."""

    def __init__(self, app: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{self.port}",
             "-w", "2", "--chdir", str(ROOT)],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log.name}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn not ready on {self.url}; see {self.log.name}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
