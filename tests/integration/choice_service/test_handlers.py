"""The choice service's consumer handlers, applied the way the consumer applies them
(``strangler.consumer.apply.apply_events``), with the consumer's tombstones."""

from __future__ import annotations

import re

import pytest

from extracted.choice_service.choices.handlers import handlers
from extracted.choice_service.choices.models import Choice, QuestionRef
from strangler.consumer.apply import Outcome, apply_events
from strangler.consumer.tombstones import is_deleted
from strangler.events import Event, InvalidEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def apply(type_: str, data: dict, seq: int = 1, *, source: str = "monolith"):
    event = Event(
        type=type_, source=source, aggregate_id=str(data["id"]), seq=seq, data=data
    )
    return apply_events([event], handlers)[0]


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
    apply("question.created", question(text="v1"), 1)
    apply("question.updated", question(text="v2"), 2)
    assert apply("question.updated", question(text="v0", created_by=9), 1) == "stale"
    ref = QuestionRef.objects.get()
    assert (ref.question_text, ref.created_by_id, ref.seq) == ("v2", 7, 2)


def test_choice_saved_keeps_the_producers_id_and_drops_stale_updates():
    apply("choice.created", {"id": 30, "question": 1, "choice_text": "old"}, 1)
    apply("choice.updated", {"id": 30, "question": 1, "choice_text": "new"}, 3)
    apply("choice.updated", {"id": 30, "question": 1, "choice_text": "mid"}, 2)
    assert choices() == [(30, 1, "new", 3)]


def test_choice_deleted_then_stale_create_stays_deleted():
    apply("choice.created", {"id": 30, "question": 1, "choice_text": "a"}, 1)
    apply("choice.deleted", {"id": 30, "question": 1}, 2)
    assert (
        apply("choice.created", {"id": 30, "question": 1, "choice_text": "a"}, 1)
        is Outcome.STALE
    )
    assert choices() == []
    assert is_deleted("choice", 30)


def test_question_deleted_removes_its_choices_and_refuses_late_ones():
    apply("question.created", question(1), 1)
    apply("question.created", question(2), 1)
    apply("choice.created", {"id": 30, "question": 1, "choice_text": "a"}, 1)
    apply("choice.created", {"id": 31, "question": 2, "choice_text": "b"}, 1)
    apply("question.deleted", {"id": 1}, 5)
    apply("question.updated", question(1), 6)
    apply("choice.created", {"id": 32, "question": 1, "choice_text": "late"}, 1)
    assert list(QuestionRef.objects.values_list("id", flat=True)) == [2]
    assert choices() == [(31, 2, "b", 1)]


def test_the_services_own_choice_events_are_not_applied_back():
    apply("choice.created", {"id": 30, "question": 1, "choice_text": "a"}, 1)
    Choice.objects.filter(pk=30).delete()
    apply("choice.updated", {"id": 30, "question": 1, "choice_text": "b"}, 2,
          source="choice")  # fmt: skip
    assert choices() == []


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
        apply("question.created", data)
    assert not QuestionRef.objects.exists()


def test_malformed_choice_data_is_refused():
    with pytest.raises(InvalidEvent, match=r"data\.choice_text"):
        apply("choice.created", {"id": 30, "question": 1, "choice_text": 5})
    assert choices() == []


def test_the_registry_binds_question_and_choice_events():
    assert handlers.bindings() == ["choice.*", "question.*"]
    assert len(handlers.types) == 6
