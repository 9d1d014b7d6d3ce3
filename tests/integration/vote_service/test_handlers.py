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
