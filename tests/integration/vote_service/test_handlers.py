"""The vote service's consumer handlers, applied the way the consumer applies them
(``strangler.consumer.apply.apply_events``): idempotent, stale-safe, and deletes that stay
deleted, with the consumer's tombstones."""

from __future__ import annotations

import re

import pytest

from extracted.vote_service.votes.handlers import handlers
from extracted.vote_service.votes.models import ChoiceRef, Vote
from strangler.consumer.apply import Outcome, apply_events
from strangler.consumer.tombstones import is_deleted
from strangler.events import Event, InvalidEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CREATED_AT = "2026-11-28T10:00:00.123456Z"


def apply(type_: str, data: dict, seq: int = 1, *, source: str = "monolith"):
    event = Event(
        type=type_, source=source, aggregate_id=str(data["id"]), seq=seq, data=data
    )
    return apply_events([event], handlers)[0]


def vote_data(vote_id: int = 10, *, choice: int = 3, question: int = 1, user: int = 7):
    return {
        "id": vote_id,
        "choice": choice,
        "question": question,
        "user": user,
        "created_at": CREATED_AT,
    }


def rows() -> list[tuple[int, int, int, int, int]]:
    return list(
        Vote.objects.order_by("id").values_list(
            "id", "choice_id", "question_id", "user_id", "seq"
        )
    )


def test_vote_created_keeps_the_producers_id_timestamp_and_seq():
    assert apply("vote.created", vote_data(10)) is Outcome.APPLIED
    vote = Vote.objects.get()
    assert rows() == [(10, 3, 1, 7, 1)]
    assert vote.created_at.isoformat() == "2026-11-28T10:00:00.123456+00:00"


def test_the_same_event_twice_is_applied_once():
    event = Event(
        type="vote.created", source="monolith", aggregate_id="10", seq=1,
        data=vote_data(10),
    )  # fmt: skip
    assert apply_events([event, event], handlers) == [
        Outcome.APPLIED,
        Outcome.DUPLICATE,
    ]
    assert apply_events([event], handlers) == [Outcome.DUPLICATE]
    assert rows() == [(10, 3, 1, 7, 1)]


def test_vote_deleted_then_stale_created_stays_deleted():
    apply("vote.created", vote_data(10), 1)
    apply("vote.deleted", vote_data(10), 2)
    assert apply("vote.created", vote_data(10), 1) is Outcome.STALE
    assert rows() == []
    assert is_deleted("vote", 10)


def test_vote_deleted_arriving_before_its_create_still_wins():
    apply("vote.deleted", vote_data(10), 2)
    apply("vote.created", vote_data(10), 1)
    assert rows() == []


def test_a_later_vote_by_the_same_user_on_the_question_replaces_a_retracted_one():
    apply("vote.created", vote_data(10, choice=3), 1)
    # vote 10 was retracted upstream and vote 11 cast; 11's create arrives first
    apply("vote.created", vote_data(11, choice=4), 1)
    assert rows() == [(11, 4, 1, 7, 1)]
    apply("vote.deleted", vote_data(10, choice=3), 2)
    assert rows() == [(11, 4, 1, 7, 1)]


def test_an_older_rival_arriving_late_is_not_inserted():
    apply("vote.created", vote_data(11, choice=4), 1)
    apply("vote.created", vote_data(10, choice=3), 1)
    assert rows() == [(11, 4, 1, 7, 1)]


def test_choice_saved_projects_choice_to_question_and_drops_stale_updates():
    apply("choice.created", {"id": 3, "question": 1, "choice_text": "a"}, 1)
    apply("choice.updated", {"id": 3, "question": 1, "choice_text": "b"}, 3)
    assert apply("choice.updated", {"id": 3, "question": 9}, 2) is Outcome.STALE
    assert list(ChoiceRef.objects.values_list("id", "question_id", "seq")) == [
        (3, 1, 3)
    ]


def test_choice_deleted_removes_its_votes_and_refuses_late_ones():
    apply("choice.created", {"id": 3, "question": 1}, 1)
    apply("choice.created", {"id": 4, "question": 1}, 1)
    apply("vote.created", vote_data(10, choice=3, user=7), 1)
    apply("vote.created", vote_data(11, choice=4, user=8), 1)
    apply("choice.deleted", {"id": 3, "question": 1}, 2)
    apply("choice.updated", {"id": 3, "question": 1}, 3)
    apply("vote.created", vote_data(12, choice=3, user=9), 1)
    assert list(ChoiceRef.objects.values_list("id", flat=True)) == [4]
    assert rows() == [(11, 4, 1, 8, 1)]


def test_question_deleted_removes_its_votes_and_choices_and_refuses_late_ones():
    apply("choice.created", {"id": 3, "question": 1}, 1)
    apply("choice.created", {"id": 5, "question": 2}, 1)
    apply("vote.created", vote_data(10, choice=3, question=1), 1)
    apply("vote.created", vote_data(11, choice=5, question=2), 1)
    apply("question.deleted", {"id": 1}, 4)
    apply("choice.created", {"id": 6, "question": 1}, 1)
    apply("vote.created", vote_data(12, choice=6, question=1, user=8), 1)
    assert list(ChoiceRef.objects.values_list("id", flat=True)) == [5]
    assert rows() == [(11, 5, 2, 7, 1)]


def test_a_vote_may_arrive_before_its_choice():
    apply("vote.created", vote_data(10, choice=3), 1)
    apply("choice.created", {"id": 3, "question": 1}, 1)
    assert rows() == [(10, 3, 1, 7, 1)]


def test_the_services_own_events_are_not_applied_back():
    """Its relay publishes to the exchange its queue is bound to: a vote it created and
    retracted since must not come back when the echo of vote.created arrives."""
    assert apply("vote.created", vote_data(10), 1, source="vote") is Outcome.APPLIED
    assert rows() == []


def test_a_batch_holding_a_question_and_its_late_vote_leaves_no_vote():
    events = [
        Event(type="question.deleted", source="monolith", aggregate_id="1", seq=2,
              data={"id": 1}),
        Event(type="vote.created", source="monolith", aggregate_id="12", seq=1,
              data=vote_data(12, question=1)),
    ]  # fmt: skip
    assert apply_events(events, handlers) == [Outcome.APPLIED, Outcome.APPLIED]
    assert rows() == []


def created(vote_id: int, seq: int = 1, *, source: str = "monolith", **fields) -> Event:
    return Event(
        type="vote.created", source=source, aggregate_id=str(vote_id), seq=seq,
        data=vote_data(vote_id, **fields),
    )  # fmt: skip


def test_a_batch_of_votes_is_one_run_of_a_constant_number_of_statements():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    events = [created(n, user=n) for n in range(1, 201)]
    with CaptureQueriesContext(connection) as queries:
        assert apply_events(events, handlers) == [Outcome.APPLIED] * 200
    # inbox, versions lock, versions write, seq counters raised; tombstones, rows, insert
    # (savepoints aside)
    statements = [q for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 7, [q["sql"][:60] for q in statements]
    assert rows() == [(n, 3, 1, n, 1) for n in range(1, 201)]


def test_duplicates_in_one_batch_and_across_batches_are_applied_once():
    first, second = created(10), created(11, user=8)
    outcomes = apply_events([first, second, first, second], handlers)
    assert outcomes == [Outcome.APPLIED] * 2 + [Outcome.DUPLICATE] * 2
    assert apply_events([second, created(12, user=9)], handlers) == [
        Outcome.DUPLICATE,
        Outcome.APPLIED,
    ]
    assert rows() == [(10, 3, 1, 7, 1), (11, 3, 1, 8, 1), (12, 3, 1, 9, 1)]


def test_a_stale_event_in_a_batch_does_not_overwrite_a_newer_one():
    apply_events([created(10, seq=3, choice=4)], handlers)
    outcomes = apply_events(
        [created(10, seq=2, choice=5), created(11, user=8)], handlers
    )
    assert outcomes == [Outcome.STALE, Outcome.APPLIED]
    assert rows() == [(10, 4, 1, 7, 3), (11, 3, 1, 8, 1)]


def test_a_redelivered_vote_with_a_newer_seq_is_overwritten_in_a_batch():
    apply_events([created(10, seq=1, choice=4)], handlers)
    outcomes = apply_events(
        [created(10, seq=2, choice=5), created(10, seq=3, choice=6)], handlers
    )
    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED]
    assert rows() == [(10, 6, 1, 7, 3)]


def test_a_vote_whose_choice_was_deleted_earlier_in_the_batch_is_not_inserted():
    events = [
        created(10, choice=3, user=7),
        Event(type="choice.deleted", source="monolith", aggregate_id="3", seq=2,
              data={"id": 3, "question": 1}),
        created(11, choice=3, user=8),
        created(12, choice=4, user=9),
    ]  # fmt: skip
    assert apply_events(events, handlers) == [Outcome.APPLIED] * 4
    assert rows() == [(12, 4, 1, 9, 1)]


@pytest.mark.parametrize("order", [(10, 11), (11, 10)])
def test_rivals_in_one_batch_leave_the_higher_id_whatever_the_order(order):
    choices = {10: 3, 11: 4}
    events = [created(n, choice=choices[n]) for n in order]
    assert apply_events(events, handlers) == [Outcome.APPLIED] * 2
    assert rows() == [(11, 4, 1, 7, 1)]


def test_a_batch_rival_replaces_a_stored_older_vote_and_yields_to_a_newer_one():
    apply_events([created(10, choice=3), created(20, question=2, choice=8)], handlers)
    events = [created(12, choice=4), created(15, question=2, choice=9)]
    assert apply_events(events, handlers) == [Outcome.APPLIED] * 2
    assert rows() == [(12, 4, 1, 7, 1), (20, 8, 2, 7, 1)]


def test_the_services_own_events_in_a_batch_are_skipped_and_the_rest_applied():
    events = [created(10, source="vote"), created(11, user=8), created(12, user=9)]
    assert apply_events(events, handlers) == [Outcome.APPLIED] * 3
    assert rows() == [(11, 3, 1, 8, 1), (12, 3, 1, 9, 1)]


def test_a_malformed_vote_in_a_batch_rolls_back_the_whole_batch():
    events = [created(10), created(11, user=8)]
    events[1].data["user"] = None
    with pytest.raises(InvalidEvent, match=r"data\.user"):
        apply_events(events, handlers)
    assert rows() == []


def one_at_a_time():
    """The vote service's registry with ``vote.created`` applied one event per call."""
    from extracted.common.projections import from_elsewhere
    from extracted.vote_service.votes.handlers import apply_votes_created
    from strangler.consumer.handlers import Handlers

    registry = Handlers()
    for event_type in handlers.types:
        if event_type != "vote.created":
            registry.register(event_type, handlers.get(event_type))
    registry.register(
        "vote.created",
        from_elsewhere(lambda data, seq: apply_votes_created([(data, seq)])),
    )
    return registry


def random_events(seed: int) -> list[Event]:
    """Votes for few users, questions and choices (so rivals meet), redelivered, stale
    and with their choice deleted, in random order."""
    import random

    rng = random.Random(seed)
    question_of = {3: 1, 4: 1, 5: 2}
    votes = {n: (rng.choice([3, 4, 5]), rng.randint(1, 3)) for n in range(1, 13)}
    events = []
    for _ in range(40):
        if rng.random() < 0.1:
            choice = rng.choice([3, 4, 5])
            data = {"id": choice, "question": question_of[choice]}
            events.append(Event(type="choice.deleted", source="monolith",
                                aggregate_id=str(choice), seq=9, data=data))  # fmt: skip
            continue
        vote_id = rng.randint(1, 12)
        choice, user = votes[vote_id]
        event = created(vote_id, rng.randint(1, 3), choice=choice,
                        question=question_of[choice], user=user)  # fmt: skip
        events.append(event)
        if rng.random() < 0.1:
            events.append(event)
    return events


@pytest.mark.parametrize("seed", range(30))
def test_a_run_of_votes_leaves_what_applying_them_one_at_a_time_leaves(seed):
    from strangler.consumer.models import AggregateVersion, InboxEvent

    events = random_events(seed)
    half = len(events) // 2
    apply_events(events[:half], one_at_a_time())
    expected = apply_events(events[half:], one_at_a_time()), rows()
    for model in (Vote, AggregateVersion, InboxEvent):
        model.objects.all().delete()
    apply_events(events[:half], handlers)
    assert (apply_events(events[half:], handlers), rows()) == expected


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**vote_data(), "choice": "3"}, "data.choice"),
        ({**vote_data(), "user": None}, "data.user"),
        ({**vote_data(), "created_at": "yesterday"}, "data.created_at"),
        ({**vote_data(), "created_at": "2026-11-28T10:00:00"}, "data.created_at"),
    ],
)
def test_malformed_vote_data_is_refused_naming_the_field(data, field):
    with pytest.raises(InvalidEvent, match=re.escape(field)):
        apply("vote.created", data)
    assert rows() == []


def test_the_registry_binds_what_the_vote_service_consumes():
    from django.conf import settings

    assert handlers.types == [
        "choice.created",
        "choice.deleted",
        "choice.updated",
        "question.deleted",
        "vote.created",
        "vote.deleted",
    ]
    assert settings.STRANGLER_CONSUMER["BINDINGS"] == [
        "vote.*",
        "choice.*",
        "question.deleted",
    ]
