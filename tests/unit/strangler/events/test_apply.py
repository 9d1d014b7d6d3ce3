"""``decide``: a batch's outcomes are those of applying its events one by one in order."""

from __future__ import annotations

from strangler.consumer.apply import Outcome, decide, runs
from strangler.events.envelope import Event

APPLIED, DUPLICATE, STALE = Outcome.APPLIED, Outcome.DUPLICATE, Outcome.STALE


def event(seq: int, type_: str = "vote.created", aggregate_id: str = "1") -> Event:
    return Event(
        type=type_, source="monolith", aggregate_id=aggregate_id, seq=seq, data={}
    )


def run(events, versions=None, fresh=None):
    fresh = {e.id for e in events} if fresh is None else fresh
    return decide(events, fresh, dict(versions or {}))


def test_several_events_of_one_aggregate_apply_in_order_and_keep_the_last():
    outcomes, changed = run([event(1), event(2), event(3)])
    assert outcomes == [APPLIED, APPLIED, APPLIED]
    assert changed == {("vote", "1"): (3, False)}


def test_an_event_older_than_an_earlier_one_in_the_batch_is_stale():
    outcomes, changed = run([event(2), event(1), event(3)])
    assert outcomes == [APPLIED, STALE, APPLIED]
    assert changed == {("vote", "1"): (3, False)}


def test_an_event_not_newer_than_the_stored_version_is_stale():
    outcomes, changed = run([event(4), event(5), event(7)], {("vote", "1"): (5, False)})
    assert outcomes == [STALE, STALE, APPLIED]
    assert changed == {("vote", "1"): (7, False)}


def test_nothing_applies_after_a_deletion_in_the_batch_or_stored():
    outcomes, changed = run([event(2, "vote.deleted"), event(1), event(5)])
    assert outcomes == [APPLIED, STALE, STALE]
    assert changed == {("vote", "1"): (2, True)}
    outcomes, changed = run([event(9)], {("vote", "1"): (2, True)})
    assert (outcomes, changed) == ([STALE], {})


def test_a_stale_deletion_does_not_bury_the_aggregate():
    outcomes, changed = run(
        [event(3, "vote.deleted"), event(6)], {("vote", "1"): (4, False)}
    )
    assert outcomes == [STALE, APPLIED]
    assert changed == {("vote", "1"): (6, False)}


def test_known_and_repeated_ids_are_duplicates():
    first, known = event(1), event(1, aggregate_id="2")
    outcomes, changed = run([first, known, first], fresh={first.id})
    assert outcomes == [APPLIED, DUPLICATE, DUPLICATE]
    assert changed == {("vote", "1"): (1, False)}


def test_aggregates_of_different_types_are_separate():
    outcomes, changed = run([event(1, "choice.created"), event(1)])
    assert outcomes == [APPLIED, APPLIED]
    assert set(changed) == {("choice", "1"), ("vote", "1")}


def test_runs_group_consecutive_applied_events_of_one_type():
    events = [
        event(1),
        event(1, aggregate_id="2"),
        event(1, aggregate_id="3"),
        event(2, "vote.deleted"),
        event(3),
        event(2, aggregate_id="2"),
    ]
    outcomes = [APPLIED, DUPLICATE, APPLIED, APPLIED, STALE, APPLIED]
    assert runs(events, outcomes) == [
        [events[0], events[2]],
        [events[3]],
        [events[5]],
    ]
    assert runs(events, [STALE] * 6) == []
