"""The outbox is written in the caller's transaction, and modes change without a restart."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection, transaction

from strangler.dualwrite.guard import (
    WriteForbidden,
    applying_remote_events,
    guard_write,
    rolled_back_dry_run,
)
from strangler.dualwrite.models import EntityMode, OutboxEvent
from strangler.dualwrite.modes import CACHE_SECONDS, get_mode, set_mode
from strangler.dualwrite.outbox import TransactionRequired, emit
from strangler.events.envelope import Event, UnknownEventType
from tests.factories import VoteFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def cast_vote_and_emit():
    vote = VoteFactory()
    return vote, emit(
        entity="vote",
        type="vote.created",
        aggregate_id=vote.pk,
        data={
            "id": vote.pk,
            "choice_id": vote.choice_id,
            "question_id": vote.question_id,
            "user_id": vote.user_id,
            "created_at": vote.created_at,
        },
    )


def test_outbox_row_is_written_when_the_transaction_commits(forward):
    with transaction.atomic():
        vote, event = cast_vote_and_emit()
    row = OutboxEvent.objects.get()
    assert str(row.event_id) == str(event.id)
    assert (row.aggregate_type, row.aggregate_id, row.seq) == ("vote", str(vote.pk), 1)
    assert Event.from_dict(row.envelope) == event
    assert row.sent_at is None


def test_no_outbox_row_when_the_transaction_rolls_back(forward):
    with pytest.raises(RuntimeError), transaction.atomic():
        cast_vote_and_emit()
        raise RuntimeError("the service function failed after emitting")
    assert OutboxEvent.objects.count() == 0
    assert not VoteFactory._meta.model.objects.exists()


def test_emit_outside_a_transaction_is_refused(forward):
    with pytest.raises(TransactionRequired, match=r"transaction.atomic"):
        emit(entity="vote", type="vote.created", aggregate_id=1, data={})
    assert OutboxEvent.objects.count() == 0


def test_unknown_type_is_refused_and_writes_nothing(forward):
    with pytest.raises(UnknownEventType, match=r"vote.renamed"), transaction.atomic():
        emit(entity="vote", type="vote.renamed", aggregate_id=1, data={})
    assert OutboxEvent.objects.count() == 0


def test_seq_increases_per_aggregate_across_transactions(forward):
    for _ in range(3):
        with transaction.atomic():
            emit(entity="choice", type="choice.updated", aggregate_id=5, data={"id": 5})
            emit(entity="choice", type="choice.updated", aggregate_id=6, data={"id": 6})
    seqs = list(
        OutboxEvent.objects.filter(aggregate_id="5").values_list("seq", flat=True)
    )
    assert seqs == [1, 2, 3]
    assert [
        json.loads(json.dumps(r))["seq"]
        for r in OutboxEvent.objects.filter(aggregate_id="6").values_list(
            "envelope", flat=True
        )
    ] == [1, 2, 3]


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_emit_is_prepared_once_per_session_and_survives_rollback_and_reconnect(
    forward,
):
    with pytest.raises(RuntimeError), transaction.atomic():
        emit(entity="choice", type="choice.updated", aggregate_id=5, data={"id": 5})
        raise RuntimeError("rolled back after the statement was prepared")
    assert prepared_statements() == ["strangler_outbox_emit"]
    for _ in range(2):
        with transaction.atomic():
            emit(entity="choice", type="choice.updated", aggregate_id=5, data={"id": 5})
        assert prepared_statements() == ["strangler_outbox_emit"]
        connection.close()  # a new session must prepare it again
    assert list(OutboxEvent.objects.values_list("seq", flat=True)) == [1, 2]


def test_emit_without_prepared_statements_for_session_resetting_poolers(
    forward, settings
):
    connection.close()
    settings.STRANGLER_DUALWRITE = {
        **getattr(settings, "STRANGLER_DUALWRITE", {}),
        "PREPARED_STATEMENTS": False,
    }
    with transaction.atomic():
        event = emit(entity="vote", type="vote.created", aggregate_id=3, data={})
    assert prepared_statements() == []
    assert OutboxEvent.objects.get().event_id == event.id


def test_concurrent_transactions_never_share_a_seq(forward):
    import threading

    def worker() -> None:
        for _ in range(20):
            with transaction.atomic():
                emit(entity="vote", type="vote.created", aggregate_id=9, data={})
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = list(OutboxEvent.objects.order_by("id").values_list("seq", flat=True))
    assert rows == list(range(1, 81)), "seqs are unique, gapless and in commit order"


def test_mode_off_writes_no_outbox_row(transactional_db):
    set_mode("vote", "off")
    with transaction.atomic():
        _, event = cast_vote_and_emit()
    assert event is None
    assert OutboxEvent.objects.count() == 0


def test_mode_change_is_seen_without_restart(transactional_db):
    set_mode("vote", "off")
    assert get_mode("vote") == "off"
    # Another process flips the mode: write the table behind this process's cache.
    EntityMode.objects.filter(entity="vote").update(mode="forward")
    deadline = time.monotonic() + CACHE_SECONDS + 2
    while get_mode("vote") != "forward":
        assert time.monotonic() < deadline, "mode change not picked up"
        time.sleep(0.05)
    with transaction.atomic():
        _, event = cast_vote_and_emit()
    assert OutboxEvent.objects.filter(event_id=event.id).exists()


def test_reverse_mode_forbids_local_writes_with_a_clear_error(transactional_db):
    set_mode("vote", "reverse")
    with pytest.raises(
        WriteForbidden, match=r"vote is in reverse mode.*strangler dualwrite set"
    ):
        guard_write("vote")
    with pytest.raises(WriteForbidden), transaction.atomic():
        cast_vote_and_emit()
    assert OutboxEvent.objects.count() == 0
    guard_write("choice")


def test_reverse_consumer_may_write_and_does_not_echo(transactional_db):
    set_mode("vote", "reverse")
    with applying_remote_events(), transaction.atomic():
        guard_write("vote")
        _, event = cast_vote_and_emit()
    assert event is None
    assert OutboxEvent.objects.count() == 0


def test_shadowed_dry_run_may_write_in_reverse_mode_and_emits_nothing(
    transactional_db,
):
    set_mode("vote", "reverse")
    with rolled_back_dry_run(), transaction.atomic():
        guard_write("vote")
        _, event = cast_vote_and_emit()
    assert event is None
    assert OutboxEvent.objects.count() == 0
    with pytest.raises(WriteForbidden):
        guard_write("vote")


def test_set_mode_rejects_unknown_entity_and_mode(transactional_db):
    with pytest.raises(ValueError, match=r"unknown entity 'ballot'"):
        set_mode("ballot", "forward")
    with pytest.raises(ValueError, match=r"unknown mode 'sideways'"):
        set_mode("vote", "sideways")
    assert not EntityMode.objects.exists()
