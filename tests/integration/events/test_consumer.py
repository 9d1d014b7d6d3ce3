"""The consumer applies each event once, drops stale ones, keeps deletions final and moves
poison to the dead-letter queue without blocking the rest."""

from __future__ import annotations

import importlib
import threading
import uuid

import pika
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from strangler.consumer.amqp import AmqpConsumer, dead_letter_queue
from strangler.consumer.apply import Outcome, apply_events
from strangler.consumer.models import AggregateVersion, InboxEvent
from strangler.consumer.tombstones import deleted_ids, is_deleted
from strangler.dualwrite.models import AggregateSequence
from strangler.dualwrite.modes import set_mode
from strangler.dualwrite.outbox import emit
from strangler.events.envelope import EXCHANGE, Event
from tests.integration.events import handlers
from tests.integration.events.conftest import drain_queue

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.rabbitmq,
    pytest.mark.django_db(transaction=True),
]


def event(type_: str = "vote.created", aggregate_id: str = "1", seq: int = 1, **data):
    return Event(
        type=type_, source="monolith", aggregate_id=aggregate_id, seq=seq, data=data
    )


def publish(amqp_url: str, *bodies: bytes, routing_key: str = "vote.created") -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = conn.channel()
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish(
            EXCHANGE, routing_key, body, pika.BasicProperties(delivery_mode=2)
        )
    conn.close()


def publish_events(amqp_url: str, *events: Event) -> None:
    for item in events:
        publish(amqp_url, item.to_json(), routing_key=item.type)


def consume(amqp_url: str, queue: str) -> AmqpConsumer:
    """Run a consumer until its queue has been idle for a second."""
    consumer = AmqpConsumer(
        amqp_url, handlers.handlers, queue=queue, max_attempts=3, batch_size=50
    )
    consumer.run(threading.Event(), idle_exit=1.0)
    return consumer


def applied() -> list[tuple[str, int]]:
    return [(agg, seq) for _, _, agg, seq in handlers.applied_rows()]


def test_redelivered_event_is_applied_once(applied_table, queue, amqp_url):
    first = event(seq=1)
    publish_events(amqp_url, first, first)
    consume(amqp_url, queue)
    publish_events(amqp_url, first)
    consumer = consume(amqp_url, queue)
    assert applied() == [("1", 1)]
    assert consumer.counts["duplicate"] == 1
    assert InboxEvent.objects.filter(event_id=first.id).count() == 1


def test_stale_event_is_dropped_by_seq(applied_table, queue, amqp_url):
    publish_events(
        amqp_url,
        event("choice.updated", "4", 2, choice_text="new"),
        event("choice.updated", "4", 1, choice_text="old"),
        event("choice.updated", "4", 3, choice_text="newest"),
    )
    consumer = consume(amqp_url, queue)
    assert applied() == [("4", 2), ("4", 3)]
    assert consumer.counts["stale"] == 1
    assert AggregateVersion.objects.get(aggregate_type="choice").seq == 3


def test_deletion_is_final(applied_table, queue, amqp_url):
    publish_events(
        amqp_url,
        event("vote.deleted", "8", 2),
        event("vote.created", "8", 1),
        event("vote.created", "8", 5),
    )
    consume(amqp_url, queue)
    assert applied() == [("8", 2)]
    assert is_deleted("vote", 8)
    assert deleted_ids("vote") == {"8"}


def test_malformed_and_unknown_events_go_to_the_dlq_without_blocking(
    applied_table, queue, amqp_url
):
    publish(amqp_url, b"{not json")
    publish_events(amqp_url, event("vote.renamed", "3", 1))
    publish(
        amqp_url, event(aggregate_id="4").to_json() + b" ", routing_key="vote.created"
    )
    bad_seq = event(aggregate_id="5").to_dict() | {"seq": -1}
    publish(amqp_url, str(bad_seq).encode())
    publish_events(amqp_url, event(aggregate_id="6"))
    consumer = consume(amqp_url, queue)
    assert applied() == [("4", 1), ("6", 1)]
    dead = drain_queue(amqp_url, dead_letter_queue(queue))
    reasons = [props.headers["x-strangler-reason"] for props, _ in dead]
    assert len(reasons) == 3, reasons
    assert "not JSON" in reasons[0]
    assert "no handler for 'vote.renamed'" in reasons[1]
    assert "not JSON" in reasons[2]
    assert dead[0][1] == b"{not json", "the original body is kept"
    assert consumer.counts["dead_lettered"] == 3
    assert drain_queue(amqp_url, queue) == []


def test_poison_event_is_retried_then_dead_lettered(applied_table, queue, amqp_url):
    poison = event(aggregate_id="9", fail=True)
    publish_events(amqp_url, event(aggregate_id="10"), poison, event(aggregate_id="11"))
    consumer = consume(amqp_url, queue)
    assert applied() == [("10", 1), ("11", 1)]
    (props, body), *rest = drain_queue(amqp_url, dead_letter_queue(queue))
    assert rest == []
    assert Event.from_json(body).id == poison.id
    assert props.headers["x-strangler-attempts"] == 3
    assert "handler failed 3 times" in props.headers["x-strangler-reason"]
    assert "asked to fail" in props.headers["x-strangler-reason"]
    assert consumer.counts["retried"] == 2
    assert not InboxEvent.objects.filter(event_id=poison.id).exists()


def test_batch_apply_rolls_back_nothing_but_the_failing_event(
    applied_table, queue, amqp_url
):
    events = [event(aggregate_id=str(n), fail=(n == 25)) for n in range(50)]
    publish_events(amqp_url, *events)
    consume(amqp_url, queue)
    assert sorted(int(agg) for agg, _ in applied()) == [n for n in range(50) if n != 25]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM h_events_applied")
        assert cursor.fetchone()[0] == 49


def test_unknown_queue_message_id_does_not_matter(applied_table, queue, amqp_url):
    body = event(aggregate_id="77").to_json()
    publish(amqp_url, body)
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    conn.channel().basic_publish(
        EXCHANGE,
        "vote.created",
        body,
        pika.BasicProperties(message_id=str(uuid.uuid4())),
    )
    conn.close()
    consume(amqp_url, queue)
    assert applied() == [("77", 1)], (
        "dedup is by the envelope's id, not the AMQP header"
    )


def test_a_batch_costs_four_statements_besides_its_handlers(applied_table):
    events = [event(aggregate_id=str(n % 7), seq=n // 7 + 1) for n in range(70)]
    with CaptureQueriesContext(connection) as queries:
        outcomes = apply_events([*events, events[3]], handlers.handlers)
    assert outcomes == [Outcome.APPLIED] * 70 + [Outcome.DUPLICATE]
    own = [
        q["sql"]
        for q in queries
        if handlers.TABLE not in q["sql"] and q["sql"] not in ("BEGIN", "COMMIT")
    ]
    assert len(own) == 4, own
    assert len(applied()) == 70
    assert dict(AggregateVersion.objects.values_list("aggregate_id", "seq")) == {
        str(n): 10 for n in range(7)
    }


def test_concurrent_overlapping_batches_apply_no_event_twice(applied_table):
    events = [event(aggregate_id=str(n % 5), seq=n // 5 + 1) for n in range(100)]
    errors: list[BaseException] = []

    def apply(batch) -> None:
        try:
            apply_events(batch, handlers.handlers)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=apply, args=(batch,))
        for batch in (events[:60], events[40:], events[20:80])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    ids = [row[0] for row in handlers.applied_rows()]
    assert len(ids) == len(set(ids)), "an event was applied twice"
    assert {str(e.id) for e in events[80:]} <= set(ids), "the newest always apply"
    assert InboxEvent.objects.count() == 100
    assert dict(AggregateVersion.objects.values_list("aggregate_id", "seq")) == {
        str(n): 20 for n in range(5)
    }


def test_applying_raises_the_local_seq_counter_and_never_lowers_it(applied_table):
    """Seq hand-off: once this database produces an aggregate it so far only consumed, its
    first event must be newer than every applied one."""
    AggregateSequence.objects.create(aggregate_type="vote", aggregate_id="2", seq=9)
    apply_events(
        [event(aggregate_id="1", seq=5), event(aggregate_id="2", seq=4)],
        handlers.handlers,
    )
    assert dict(AggregateSequence.objects.values_list("aggregate_id", "seq")) == {
        "1": 5,
        "2": 9,
    }
    apply_events([event(aggregate_id="1", seq=3)], handlers.handlers)  # stale
    assert AggregateSequence.objects.get(aggregate_id="1").seq == 5
    with transaction.atomic():
        emitted = [emit_vote("1"), emit_vote("2"), emit_vote("3")]
    assert [e.seq for e in emitted] == [6, 10, 1]


def test_the_migration_raises_counters_to_versions_applied_before_it():
    migration = importlib.import_module(
        "strangler.dualwrite.migrations.0002_counters_from_applied_versions"
    )
    now = timezone.now()
    for aggregate_id, seq in (("1", 5), ("2", 4), ("3", 0)):
        AggregateVersion.objects.create(
            aggregate_type="vote", aggregate_id=aggregate_id, seq=seq, updated_at=now
        )
    AggregateSequence.objects.create(aggregate_type="vote", aggregate_id="2", seq=9)
    with connection.schema_editor() as editor:
        migration.raise_counters(None, editor)
    assert dict(AggregateSequence.objects.values_list("aggregate_id", "seq")) == {
        "1": 5,
        "2": 9,
    }


def emit_vote(aggregate_id: str) -> Event:
    set_mode("vote", "forward")
    return emit(entity="vote", type="vote.created", aggregate_id=aggregate_id, data={})


def test_a_batch_handler_gets_each_run_of_applied_events_of_its_type():
    from strangler.consumer.handlers import Handlers

    calls: list[list[tuple[str, str, int]]] = []
    registry = Handlers()

    @registry.on_batch("vote.created", "vote.deleted")
    def record_run(events) -> None:
        calls.append([(e.type, e.aggregate_id, e.seq) for e in events])

    known = event(aggregate_id="9")
    apply_events([known], registry)
    calls.clear()
    batch = [
        event(aggregate_id="1"),
        known,
        event(aggregate_id="2"),
        event(aggregate_id="1", seq=1),
        event("vote.deleted", aggregate_id="2", seq=2),
        event(aggregate_id="3"),
        event(aggregate_id="2", seq=3),
    ]
    with CaptureQueriesContext(connection) as queries:
        outcomes = apply_events(batch, registry)
    assert outcomes == [
        Outcome.APPLIED,
        Outcome.DUPLICATE,
        Outcome.APPLIED,
        Outcome.STALE,
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.STALE,
    ]
    assert calls == [
        [("vote.created", "1", 1), ("vote.created", "2", 1)],
        [("vote.deleted", "2", 2)],
        [("vote.created", "3", 1)],
    ]
    assert len([q for q in queries if q["sql"] not in ("BEGIN", "COMMIT")]) == 4
