"""The fence of a dry run: has this database applied given events, and the bounded wait
for them, on the real database the consumer writes its versions to."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from strangler.consumer.apply import apply_events
from strangler.consumer.fence import applied, wait_until_applied
from strangler.consumer.handlers import Handlers
from strangler.events.envelope import Event
from strangler.events.refs import EventRef

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgres(db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")


def handlers() -> Handlers:
    registry = Handlers()
    registry.on("vote.created", "vote.deleted")(lambda event: None)
    return registry


def consume(type_: str, aggregate_id: str, seq: int) -> None:
    """Apply one event the way the consumer does (inbox, version, tombstone)."""
    event = Event(
        type=type_, source="monolith", aggregate_id=aggregate_id, seq=seq, data={}
    )
    apply_events([event], handlers())


def ref(aggregate_id: str, seq: int) -> EventRef:
    return EventRef("vote", aggregate_id, seq)


def test_an_event_is_applied_once_its_aggregate_reached_its_seq():
    consume("vote.created", "1", 1)
    consume("vote.created", "2", 3)
    wanted = {ref("1", 1), ref("1", 2), ref("2", 2), ref("2", 3), ref("3", 1)}
    assert applied(wanted) == {ref("1", 1), ref("2", 2), ref("2", 3)}


def test_a_tombstone_counts_as_applied_for_any_seq():
    consume("vote.created", "1", 1)
    consume("vote.deleted", "1", 2)
    assert applied({ref("1", 2), ref("1", 5)}) == {ref("1", 2), ref("1", 5)}


def test_aggregates_of_another_type_are_not_mixed_up():
    consume("vote.created", "1", 4)
    assert applied({EventRef("choice", "1", 1)}) == set()


def test_no_refs_need_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert applied(set()) == set()
        assert wait_until_applied([], timeout=5) == set()


def test_a_fence_that_holds_returns_at_once_with_one_query(django_assert_num_queries):
    consume("vote.created", "1", 1)
    with django_assert_num_queries(1):
        assert wait_until_applied([ref("1", 1)], timeout=5) == set()


def test_a_fence_never_met_times_out_naming_what_is_missing():
    consume("vote.created", "1", 1)
    started = time.monotonic()
    missing = wait_until_applied([ref("1", 1), ref("1", 2)], timeout=0.3)
    assert missing == {ref("1", 2)}
    assert time.monotonic() - started >= 0.3


@pytest.mark.django_db(transaction=True)
def test_the_wait_sees_an_event_the_consumer_commits_meanwhile():
    consume("vote.created", "1", 1)
    fence = [ref("1", 1), ref("1", 2)]
    assert applied(fence) == {ref("1", 1)}
    arrived = threading.Event()

    def consumer() -> None:
        time.sleep(0.3)
        try:
            consume("vote.deleted", "1", 2)
        finally:
            connection.close()
        arrived.set()

    thread = threading.Thread(target=consumer)
    thread.start()
    try:
        missing = wait_until_applied(fence, timeout=20)
    finally:
        thread.join()
    assert missing == set()
    assert arrived.is_set()
