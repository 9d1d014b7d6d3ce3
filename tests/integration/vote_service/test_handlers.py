"""Applying the monolith's events: idempotent, stale-safe, and deletes that stay deleted."""

from __future__ import annotations

import re

import pytest

from extracted.vote_service.votes.handlers import (
    HANDLERS,
    apply_choice_deleted,
    apply_choice_saved,
    apply_question_deleted,
    apply_vote_created,
    apply_vote_deleted,
)
from extracted.vote_service.votes.models import ChoiceRef, Tombstone, Vote
from strangler.events import InvalidEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CREATED_AT = "2026-11-28T10:00:00.123456Z"


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


def test_vote_created_keeps_the_monolith_id_and_timestamp():
    apply_vote_created(vote_data(10), 1)
    vote = Vote.objects.get()
    assert (vote.pk, vote.choice_id, vote.question_id, vote.user_id, vote.seq) == (
        10,
        3,
        1,
        7,
        1,
    )
    assert vote.created_at.isoformat() == "2026-11-28T10:00:00.123456+00:00"


def test_applying_vote_created_twice_is_applying_it_once():
    apply_vote_created(vote_data(10), 1)
    apply_vote_created(vote_data(10), 1)
    assert rows() == [(10, 3, 1, 7, 1)]


def test_vote_deleted_then_stale_created_stays_deleted():
    apply_vote_created(vote_data(10), 1)
    apply_vote_deleted({"id": 10}, 2)
    apply_vote_created(vote_data(10), 1)
    assert rows() == []
    assert Tombstone.objects.get(entity="vote", aggregate_id=10).seq == 2


def test_vote_deleted_arriving_before_its_create_still_wins():
    apply_vote_deleted({"id": 10}, 2)
    apply_vote_created(vote_data(10), 1)
    assert rows() == []


def test_stale_vote_deleted_does_not_remove_a_newer_row():
    apply_vote_created(vote_data(10), 3)
    apply_vote_deleted({"id": 10}, 2)
    assert rows() == [(10, 3, 1, 7, 3)]


def test_a_later_vote_by_the_same_user_on_the_question_replaces_a_retracted_one():
    apply_vote_created(vote_data(10, choice=3), 1)
    # vote 10 was retracted upstream and vote 11 cast; 11's create arrives first
    apply_vote_created(vote_data(11, choice=4), 1)
    assert rows() == [(11, 4, 1, 7, 1)]
    apply_vote_created(vote_data(10, choice=3), 1)
    assert rows() == [(11, 4, 1, 7, 1)]
    apply_vote_deleted({"id": 10}, 2)
    assert rows() == [(11, 4, 1, 7, 1)]


def test_choice_saved_projects_choice_to_question_and_drops_stale_updates():
    apply_choice_saved({"id": 3, "question": 1, "choice_text": "a"}, 2)
    apply_choice_saved({"id": 3, "question": 9, "choice_text": "b"}, 1)
    apply_choice_saved({"id": 3, "question": 1, "choice_text": "a"}, 2)
    assert list(ChoiceRef.objects.values_list("id", "question_id", "seq")) == [
        (3, 1, 2)
    ]


def test_choice_deleted_removes_its_votes_and_refuses_late_ones():
    apply_choice_saved({"id": 3, "question": 1}, 1)
    apply_choice_saved({"id": 4, "question": 1}, 1)
    apply_vote_created(vote_data(10, choice=3, user=7), 1)
    apply_vote_created(vote_data(11, choice=4, user=8), 1)
    apply_choice_deleted({"id": 3}, 2)
    apply_choice_saved({"id": 3, "question": 1}, 1)
    apply_vote_created(vote_data(12, choice=3, user=9), 1)
    assert list(ChoiceRef.objects.values_list("id", flat=True)) == [4]
    assert rows() == [(11, 4, 1, 8, 1)]


def test_question_deleted_removes_its_votes_and_choices_and_refuses_late_ones():
    apply_choice_saved({"id": 3, "question": 1}, 1)
    apply_choice_saved({"id": 5, "question": 2}, 1)
    apply_vote_created(vote_data(10, choice=3, question=1), 1)
    apply_vote_created(vote_data(11, choice=5, question=2), 1)
    apply_question_deleted({"id": 1}, 4)
    apply_question_deleted({"id": 1}, 4)
    apply_choice_saved({"id": 6, "question": 1}, 1)
    apply_vote_created(vote_data(12, choice=6, question=1, user=8), 1)
    assert list(ChoiceRef.objects.values_list("id", flat=True)) == [5]
    assert rows() == [(11, 5, 2, 7, 1)]


def test_a_vote_may_arrive_before_its_choice():
    apply_vote_created(vote_data(10, choice=3), 1)
    apply_choice_saved({"id": 3, "question": 1}, 1)
    assert rows() == [(10, 3, 1, 7, 1)]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**vote_data(), "choice": "3"}, "data.choice"),
        ({**vote_data(), "user": None}, "data.user"),
        ({**vote_data(), "created_at": "yesterday"}, "data.created_at"),
        ({**vote_data(), "created_at": "2026-11-28T10:00:00"}, "data.created_at"),
        ({"choice": 3, "question": 1, "user": 7, "created_at": CREATED_AT}, "data.id"),
    ],
)
def test_malformed_vote_data_is_refused_naming_the_field(data, field):
    with pytest.raises(InvalidEvent, match=re.escape(field)):
        apply_vote_created(data, 1)
    assert rows() == []


def test_model_field_names_are_accepted_too():
    apply_vote_created(
        {
            "id": 10,
            "choice_id": 3,
            "question_id": 1,
            "user_id": 7,
            "created_at": CREATED_AT,
        },
        1,
    )
    assert rows() == [(10, 3, 1, 7, 1)]


def test_handlers_cover_the_events_the_vote_service_consumes():
    assert set(HANDLERS) == {
        "vote.created",
        "vote.deleted",
        "choice.created",
        "choice.updated",
        "choice.deleted",
        "question.deleted",
    }


def test_vote_created_takes_a_fixed_number_of_queries(django_assert_num_queries):
    # savepoint, tombstone check, rival lookup, insert, conditional update, release
    with django_assert_num_queries(6):
        apply_vote_created(vote_data(10), 1)
