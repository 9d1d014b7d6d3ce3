"""Fixtures for the event backbone's integration tests: real PostgreSQL and RabbitMQ (use the
``h_events`` vhost), a queue per test, and helpers to run relays and consumers as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pika
import pytest
from django.db import connection, transaction

from strangler.consumer.amqp import dead_letter_queue, declare_topology
from strangler.dualwrite.modes import clear_cache, set_mode
from strangler.dualwrite.outbox import emit
from tests.integration.events import handlers

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


@pytest.fixture
def amqp_url() -> str:
    return os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/h_events")


@pytest.fixture
def forward(transactional_db):
    for entity in ("vote", "choice", "question"):
        set_mode(entity, "forward")
    yield
    clear_cache()


@pytest.fixture
def applied_table(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute(handlers.CREATE_TABLE)
        cursor.execute(f"TRUNCATE {handlers.TABLE}")
    yield handlers.TABLE
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {handlers.TABLE}")


@pytest.fixture
def queue(amqp_url):
    """A fresh durable queue (and DLQ) bound like the test consumer, deleted afterwards."""
    name = f"h_events.test.{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    declare_topology(conn.channel(), name, handlers.handlers.bindings())
    conn.close()
    yield name
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = conn.channel()
    channel.queue_delete(name)
    channel.queue_delete(dead_letter_queue(name))
    conn.close()


def drain_queue(amqp_url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Every message currently in ``queue``, in queue order (consumed and acked)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = conn.channel()
    messages = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        messages.append((props, body))
    conn.close()
    return messages


def emit_votes(
    count: int, *, aggregates: int | None = None, start: int = 1
) -> list[str]:
    """Emit ``count`` vote events round-robin over ``aggregates`` ids, ten per transaction."""
    aggregates = aggregates or count
    ids = []
    for offset in range(0, count, 10):
        with transaction.atomic():
            for n in range(offset, min(offset + 10, count)):
                vote_id = start + n % aggregates
                event = emit(
                    entity="vote",
                    type="vote.created",
                    aggregate_id=vote_id,
                    data={"id": vote_id, "n": n},
                )
                ids.append(str(event.id))
    return ids


def process_env(queue: str = "h_events.test") -> dict[str, str]:
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        DJANGO_SETTINGS_MODULE="tests.integration.events.settings",
        H_EVENTS_QUEUE=queue,
        PYTHONPATH=str(ROOT),
    )
    return env


def start(verb: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "strangler", *verb],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(
    process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20
) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(5)
