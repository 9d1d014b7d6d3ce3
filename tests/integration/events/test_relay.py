"""The relay publishes each committed outbox row once, in order per aggregate, across
parallel relays and broker outages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from strangler.dualwrite.models import OutboxEvent
from strangler.relay.runner import Relay
from strangler.relay.transports import AmqpTransport
from tests.integration.events.conftest import (
    ROOT,
    drain_queue,
    emit_votes,
    process_env,
    start,
)
from tests.integration.events.proxy import TcpProxy

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.rabbitmq,
    pytest.mark.django_db(transaction=True),
]


def assert_in_order_per_aggregate(messages) -> None:
    last: dict[str, int] = defaultdict(int)
    for _props, body in messages:
        event = json.loads(body)
        assert event["seq"] > last[event["aggregate_id"]], f"out of order: {event}"
        last[event["aggregate_id"]] = event["seq"]


def assert_published_once_in_order(amqp_url: str, queue: str, expected) -> None:
    """Every row on the queue exactly once, in seq order per aggregate, none left unsent."""
    messages = drain_queue(amqp_url, queue)
    ids = Counter(props.message_id for props, _ in messages)
    assert set(ids) == set(expected)
    assert max(ids.values()) == 1, "a row was published twice"
    assert_in_order_per_aggregate(messages)
    assert not OutboxEvent.objects.filter(sent_at__isnull=True).exists()


def test_three_parallel_relays_publish_each_row_exactly_once_in_order(
    forward, queue, amqp_url, tmp_path
):
    expected = emit_votes(3000, aggregates=30)
    env = process_env(queue)
    # Small batches (300 claims, each waiting for its confirms) keep the outbox busy long
    # enough that all three relays are claiming at once: a fast relay with big batches
    # can drain 3,000 rows before the other two have started.
    relays = [
        start(
            ["relay", "--producer", "monolith", "--batch-size", "10", "--drain"],
            env,
            tmp_path / f"relay{n}.log",
        )
        for n in range(3)
    ]
    for relay in relays:
        relay.wait(120)
    logs = "".join((tmp_path / f"relay{n}.log").read_text() for n in range(3))
    assert [r.returncode for r in relays] == [0, 0, 0], logs
    sent_by = [
        int(found.group(1))
        for found in re.finditer(r"relay monolith: (\d+) events sent", logs)
    ]
    assert sum(sent_by) == 3000
    assert sum(1 for n in sent_by if n > 0) >= 2, (
        f"relays did not share the work: {sent_by}"
    )
    assert_published_once_in_order(amqp_url, queue, expected)


def test_relay_rides_out_a_broker_outage_and_delivers_everything(
    forward, queue, amqp_url
):
    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname, parts.port or 5672)
    proxied = urlunsplit(
        parts._replace(
            netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
        )
    )
    relay = Relay(
        AmqpTransport(proxied, confirm_timeout=3),
        producer="monolith",
        batch_size=50,
        max_backoff=0.5,
    )
    stopping = threading.Event()

    def run() -> None:
        relay.run(stopping)
        connection.close()

    expected = emit_votes(500, aggregates=50)
    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: relay.sent_total > 0)
        proxy.cut()
        expected += emit_votes(500, aggregates=50, start=1)
        time.sleep(2)
        unsent_during_outage = OutboxEvent.objects.filter(sent_at__isnull=True).count()
        assert unsent_during_outage > 0, "the cut did not stop the relay"
        proxy.restore()
        wait_for(
            lambda: not OutboxEvent.objects.filter(sent_at__isnull=True).exists(), 60
        )
    finally:
        stopping.set()
        thread.join(30)
        proxy.close()
    assert not thread.is_alive(), "the relay did not stop"
    messages = drain_queue(amqp_url, queue)
    assert {props.message_id for props, _ in messages} == set(expected)
    assert_in_order_per_aggregate(dedup(messages))


def dedup(messages):
    """Drop redeliveries of an event already seen (a cut mid-confirm republishes it)."""
    seen, result = set(), []
    for props, body in messages:
        if props.message_id not in seen:
            seen.add(props.message_id)
            result.append((props, body))
    return result


def test_unroutable_events_stay_in_the_outbox_with_the_reason(forward, amqp_url):
    from django.db import transaction

    from strangler.dualwrite.outbox import emit

    with transaction.atomic():
        emit(entity="question", type="question.updated", aggregate_id=1, data={})
    relay = Relay(AmqpTransport(amqp_url), producer="monolith")
    try:
        relay.run_once()
    finally:
        relay.transport.close()
    row = OutboxEvent.objects.get()
    assert row.sent_at is None
    assert "unroutable" in row.last_error
    assert row.next_attempt_at is not None


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def age_outbox(sent_hours_ago: dict[int, float | None]) -> None:
    """Mark outbox rows (by position in id order) sent that many hours ago, or unsent."""
    from datetime import UTC, datetime, timedelta

    ids = list(OutboxEvent.objects.order_by("id").values_list("id", flat=True))
    for position, hours in sent_hours_ago.items():
        sent_at = None if hours is None else datetime.now(UTC) - timedelta(hours=hours)
        OutboxEvent.objects.filter(id=ids[position]).update(sent_at=sent_at)


def test_purge_deletes_only_rows_sent_before_the_cutoff_in_batches(forward):
    from strangler.relay.purge import purge_sent

    expected_kept = emit_votes(30)
    age_outbox({n: 48 if n < 20 else (0.1 if n < 25 else None) for n in range(30)})
    old = set(
        OutboxEvent.objects.filter(sent_at__lt=time_ago(hours=24)).values_list(
            "id", flat=True
        )
    )
    assert len(old) == 20
    assert purge_sent(older_than=86400, dry_run=True) == 20
    assert OutboxEvent.objects.count() == 30, "a dry run deletes nothing"
    assert purge_sent(older_than=86400, batch_size=7) == 20
    kept = {str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)}
    assert kept == set(expected_kept[20:])
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 5
    assert purge_sent(older_than=86400) == 0


def test_one_relay_process_with_workers_publishes_each_row_once_in_order(
    forward, queue, amqp_url, tmp_path
):
    expected = emit_votes(3000, aggregates=30)
    log = tmp_path / "relay.log"
    relay = start(
        ["relay", "--producer", "monolith", "--workers", "3", "--batch-size", "10",
         "--drain"],
        process_env(queue),
        log,
    )  # fmt: skip
    assert relay.wait(120) == 0, log.read_text()
    line = next(x for x in log.read_text().splitlines() if " events sent" in x)
    assert "relay monolith: 3000 events sent (by worker: " in line, line
    shares = [int(n) for n in line.rsplit("(by worker: ", 1)[1].rstrip(")").split(", ")]
    assert len(shares) == 3 and sum(shares) == 3000
    assert sum(1 for n in shares if n > 0) >= 2, f"workers did not share: {shares}"
    assert_published_once_in_order(amqp_url, queue, expected)


def test_relay_cli_refuses_zero_workers(forward, tmp_path):
    log = tmp_path / "relay.log"
    relay = start(
        ["relay", "--producer", "monolith", "--workers", "0"], process_env(), log
    )
    assert relay.wait(60) != 0
    assert "--workers must be at least 1" in log.read_text()


def test_relay_cli_purges_sent_rows_and_dry_run_only_counts(forward, queue, tmp_path):
    emit_votes(12)
    age_outbox({n: 48 for n in range(8)})
    env = process_env(queue)
    log = tmp_path / "purge.log"
    purge = ["relay", "--producer", "monolith", "--purge-sent-older-than", "3600"]
    dry = start([*purge, "--dry-run"], env, log)
    assert dry.wait(60) == 0, log.read_text()
    assert "8 sent events older than 3600s (dry run)" in log.read_text()
    assert OutboxEvent.objects.count() == 12
    relay = start([*purge, "--drain"], env, log)
    assert relay.wait(60) == 0, log.read_text()
    assert "8 sent events purged" in log.read_text()
    assert OutboxEvent.objects.count() == 4
    assert not OutboxEvent.objects.filter(sent_at__isnull=True).exists()


def test_manage_py_relay_takes_the_same_purge_options(forward, queue, tmp_path):
    emit_votes(6)
    age_outbox({n: 48 for n in range(4)})
    env = process_env(queue)
    purge = ["relay", "--producer", "monolith", "--purge-sent-older-than", "3600"]
    manage = [sys.executable, str(ROOT / "monolith" / "manage.py")]

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*manage, *purge, *extra],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    dry = run("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "4 sent events older than 3600s (dry run)" in dry.stdout
    assert OutboxEvent.objects.count() == 6
    drained = run("--drain")
    assert drained.returncode == 0, drained.stderr
    assert "4 sent events purged" in drained.stdout
    assert OutboxEvent.objects.count() == 2
    refused = subprocess.run(
        [*manage, "relay", "--producer", "monolith", "--dry-run"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "--dry-run only applies to --purge-sent-older-than" in refused.stderr


def test_relay_cli_refuses_dry_run_without_purge(forward, tmp_path):
    log = tmp_path / "relay.log"
    relay = start(["relay", "--producer", "monolith", "--dry-run"], process_env(), log)
    assert relay.wait(60) != 0
    assert "--dry-run only applies to --purge-sent-older-than" in log.read_text()


def time_ago(**delta):
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(**delta)
