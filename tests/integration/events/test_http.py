"""The HTTP transport (``AMQP_URL`` unset): a relay process POSTs to a consumer endpoint served
by gunicorn. Killing the relay mid-batch still applies every event exactly once, and a request
with the wrong token is refused."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import requests
from django.db import connection

from strangler.consumer.models import DeadLetter, InboxEvent
from strangler.dualwrite.models import OutboxEvent
from strangler.events.http import PATH
from tests.integration.events import handlers
from tests.integration.events.conftest import ROOT, emit_votes, process_env, start, stop

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TOKEN = "h-events-http-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_env() -> dict[str, str]:
    env = process_env()
    env.pop("AMQP_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.integration.events.http_settings",
        STRANGLER_EVENTS_TOKEN=TOKEN,
    )
    return env


@pytest.fixture
def endpoint(transactional_db, tmp_path):
    """The test consumer under gunicorn on an ephemeral port; yields its events URL."""
    port = free_port()
    wsgi = "monolith.config.wsgi:application"
    log = tmp_path / "gunicorn.log"
    with log.open("ab") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                wsgi,
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "2",
            ],
            env=http_env(),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/{PATH}"
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(requests.RequestException):
            requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            break
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield url
    stop(server)
    connection.close()


def emit_in_batches(batches: int, emitted: list[str], done: threading.Event) -> None:
    try:
        for n in range(batches):
            emitted += emit_votes(20, start=1 + n * 20)
            time.sleep(0.05)
    finally:
        done.set()
        connection.close()


def test_killed_relay_delivers_every_event_once_over_http(
    forward, applied_table, endpoint, tmp_path
):
    rng = random.Random(int(os.environ.get("STRANGLER_SEED", time.time())))
    env = http_env() | {"STRANGLER_EVENT_TARGETS": endpoint}
    command = ["relay", "--producer", "monolith", "--batch-size", "25"]
    log = tmp_path / "relay.log"
    relay = start(command, env, log)
    emitted: list[str] = []
    done = threading.Event()
    producer = threading.Thread(target=emit_in_batches, args=(40, emitted, done))
    producer.start()
    kills = 0
    try:
        while not done.is_set() or kills < 4:
            time.sleep(rng.uniform(0.2, 0.8))
            relay.send_signal(signal.SIGKILL)
            relay.wait(10)
            kills += 1
            relay = start(command, env, log)
        producer.join(60)
        deadline = time.monotonic() + 60
        while {row[0] for row in handlers.applied_rows()} != set(emitted):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        done.set()
        producer.join(30)
        time.sleep(1.5)  # let the last relay install its SIGTERM handler
        code = stop(relay)
    assert code == 0, log.read_text()[-3000:]
    per_event = Counter(row[0] for row in handlers.applied_rows())
    assert set(per_event) == set(emitted) and len(emitted) == 800
    assert max(per_event.values()) == 1, "an event was applied twice"
    assert InboxEvent.objects.count() == 800
    assert not OutboxEvent.objects.filter(sent_at__isnull=True).exists()
    assert not DeadLetter.objects.exists()


def test_wrong_token_is_refused_and_applies_nothing(forward, applied_table, endpoint):
    emit_votes(3)
    body = {"events": list(OutboxEvent.objects.values_list("envelope", flat=True))}
    for authorization in ("Bearer not-the-token", "", f"Basic {TOKEN}"):
        response = requests.post(
            endpoint, json=body, headers={"Authorization": authorization}, timeout=10
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "not_authenticated"
    assert handlers.applied_rows() == []
    assert not InboxEvent.objects.exists()
    accepted = requests.post(
        endpoint, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["results"]["applied"] == 3
    assert len(handlers.applied_rows()) == 3
