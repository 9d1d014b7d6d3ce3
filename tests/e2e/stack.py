"""The whole event path as real processes: scratch PostgreSQL databases (``h_e2e_*``), gunicorn
for the monolith and the vote service, and ``strangler relay`` / ``strangler consume``
subprocesses whose RabbitMQ connections run through a ``TcpProxy`` the tests can cut."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pika
import psycopg2
import requests

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {
    "monolith": "monolith.config.settings",
    "vote": "extracted.vote_service.config.settings",
    "choice": "extracted.choice_service.config.settings",
}
WSGI = {
    "monolith": "monolith.config.wsgi",
    "vote": "extracted.vote_service.config.wsgi",
    "choice": "extracted.choice_service.config.wsgi",
}
DRAIN_SECONDS = 180  # a failsafe for a hung pipeline, not a performance bound

Row = tuple[int, int, int, int]


def database_url(name: str) -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def sql(database: str, statement: str, *params: object) -> list[tuple]:
    with closing(psycopg2.connect(database_url(database))) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []


def create_database(name: str) -> None:
    assert name.startswith("h_e2e_"), name
    drop_database(name)
    sql("postgres", f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    assert name.startswith("h_e2e_"), name
    sql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_modes(database: str, **modes: str) -> None:
    """What ``strangler dualwrite set`` stores; running processes see it within 1 s."""
    for entity, mode in modes.items():
        sql(
            database,
            "INSERT INTO strangler_dualwrite_entitymode (entity, mode, updated_at)"
            " VALUES (%s, %s, now()) ON CONFLICT (entity) DO UPDATE"
            " SET mode = EXCLUDED.mode, updated_at = now()",
            entity,
            mode,
        )


VOTE_COLUMNS = "SELECT id, choice_id, question_id, user_id FROM "


def votes(database: str, table: str) -> set[Row]:
    """The full set of votes in ``table`` (polls_vote or votes_vote)."""
    return set(sql(database, VOTE_COLUMNS + table))


def unsent(database: str) -> int:
    return sql(
        database,
        "SELECT count(*) FROM strangler_dualwrite_outboxevent WHERE sent_at IS NULL",
    )[0][0]


def wait_until(
    condition: Callable[[], bool], what: str, logs: Callable[[], str]
) -> None:
    deadline = time.monotonic() + DRAIN_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached\n{logs()}")
        time.sleep(0.25)


class Deployable:
    """One deployable's database, settings and environment."""

    def __init__(self, name: str, database: str, env: dict[str, str]) -> None:
        self.name = name
        self.database = database
        self.env = {
            **env,
            "DATABASE_URL": database_url(database),
            "DJANGO_SETTINGS_MODULE": SETTINGS[name],
        }

    def run(self, *args: str) -> str:
        """``python -m strangler ARGS`` with this deployable's settings; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "strangler", *args],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"strangler {' '.join(args)}: {done.stderr}")
        return done.stdout

    def migrate(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "django", "migrate", "--noinput", "-v0"],
            env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip


class Proc:
    """A subprocess that can be SIGKILLed and started again with the same command."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.popen: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def restart_killed(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> int:
        """SIGTERM and the exit code (a clean stop is 0)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(5)

    def tail(self, size: int = 3000) -> str:
        return f"--- {self.log.name}\n{self.log.read_text(errors='replace')[-size:]}"


def strangler_proc(
    deployable: Deployable, verb: list[str], amqp_url: str, log: Path
) -> Proc:
    env = {**deployable.env, "AMQP_URL": amqp_url}
    return Proc([sys.executable, "-m", "strangler", *verb], env, log)


def gunicorn(
    deployable: Deployable, log: Path, sock: Path | None = None
) -> tuple[Proc, str]:
    """gunicorn on a free port, and on the Unix socket ``sock`` too when given (as
    scripts/stack.py deploys it, for the router)."""
    port = free_port()
    unix = ["--bind", f"unix:{sock}"] if sock is not None else []
    proc = Proc(
        [sys.executable, "-m", "gunicorn", f"{WSGI[deployable.name]}:application",
         "--bind", f"127.0.0.1:{port}", *unix, "--workers", "4", "--threads", "2",
         "--graceful-timeout", "5", "--no-control-socket"],
        deployable.env, log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"gunicorn {deployable.name} did not start\n{proc.tail()}"
            )
        time.sleep(0.2)


def publish_raw(amqp_url: str, routing_key: str, body: bytes) -> None:
    """Publish straight to the exchange, as a broken or foreign producer would."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = conn.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        "strangler.events",
        routing_key,
        body,
        pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
        mandatory=True,
    )
    conn.close()


def drain_queue(amqp_url: str, queue: str) -> list[tuple[dict, bytes]]:
    """Every message in ``queue`` (headers, body), consumed."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = conn.channel()
    messages = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        messages.append((props.headers or {}, body))
    conn.close()
    return messages


def delete_queues(amqp_url: str, *queues: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = conn.channel()
    for queue in queues:
        channel.queue_delete(queue)
    conn.close()


def envelope(**fields: object) -> bytes:
    return json.dumps(fields).encode()
