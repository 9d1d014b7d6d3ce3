"""Applying the monolith's question and choice events to the choice service."""

from __future__ import annotations

import re

import pytest

from extracted.choice_service.choices.handlers import (
    HANDLERS,
    apply_choice_deleted,
    apply_choice_saved,
    apply_question_deleted,
    apply_question_saved,
)
from extracted.choice_service.choices.models import Choice, QuestionRef
from strangler.events import InvalidEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def question(question_id: int = 1, *, created_by: int = 7, text: str = "Why?"):
    return {
        "id": question_id,
        "question_text": text,
        "pub_date": "2026-11-28T00:00:00Z",
        "created_by": created_by,
    }


def choices() -> list[tuple[int, int, str, int]]:
    return list(
        Choice.objects.order_by("id").values_list(
            "id", "question_id", "choice_text", "seq"
        )
    )


def test_question_saved_twice_is_saved_once_and_stale_updates_are_dropped():
    apply_question_saved(question(text="v2"), 2)
    apply_question_saved(question(text="v2"), 2)
    apply_question_saved(question(text="v1", created_by=9), 1)
    ref = QuestionRef.objects.get()
    assert (ref.question_text, ref.created_by_id, ref.seq) == ("v2", 7, 2)


def test_choice_saved_keeps_the_monolith_id_and_drops_stale_updates():
    apply_choice_saved({"id": 30, "question": 1, "choice_text": "new"}, 3)
    apply_choice_saved({"id": 30, "question": 1, "choice_text": "old"}, 2)
    apply_choice_saved({"id": 30, "question": 1, "choice_text": "new"}, 3)
    assert choices() == [(30, 1, "new", 3)]


def test_choice_deleted_then_stale_create_stays_deleted():
    apply_choice_saved({"id": 30, "question": 1, "choice_text": "a"}, 1)
    apply_choice_deleted({"id": 30}, 2)
    apply_choice_saved({"id": 30, "question": 1, "choice_text": "a"}, 1)
    assert choices() == []


def test_question_deleted_removes_its_choices_and_refuses_late_ones():
    apply_question_saved(question(1), 1)
    apply_question_saved(question(2), 1)
    apply_choice_saved({"id": 30, "question": 1, "choice_text": "a"}, 1)
    apply_choice_saved({"id": 31, "question": 2, "choice_text": "b"}, 1)
    apply_question_deleted({"id": 1}, 5)
    apply_question_saved(question(1), 4)
    apply_choice_saved({"id": 32, "question": 1, "choice_text": "late"}, 1)
    assert list(QuestionRef.objects.values_list("id", flat=True)) == [2]
    assert choices() == [(31, 2, "b", 1)]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**question(), "created_by": "7"}, "data.created_by"),
        ({**question(), "question_text": "x" * 201}, "data.question_text"),
        ({**question(), "pub_date": None}, "data.pub_date"),
    ],
)
def test_malformed_question_data_is_refused(data, field):
    with pytest.raises(InvalidEvent, match=re.escape(field)):
        apply_question_saved(data, 1)
    assert not QuestionRef.objects.exists()


def test_malformed_choice_data_is_refused():
    with pytest.raises(InvalidEvent, match=r"data\.choice_text"):
        apply_choice_saved({"id": 30, "question": 1, "choice_text": 5}, 1)
    assert choices() == []


def test_handlers_cover_question_and_choice_events():
    assert set(HANDLERS) == {
        "question.created",
        "question.updated",
        "question.deleted",
        "choice.created",
        "choice.updated",
        "choice.deleted",
    }
