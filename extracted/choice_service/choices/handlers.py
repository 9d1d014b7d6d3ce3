"""Applying other producers' events to the choice service's tables: the monolith's choices
while it owns them, and the questions (the monolith keeps those).

The consumer (settings ``STRANGLER_CONSUMER``) calls the registered handlers inside its apply
transaction, after its inbox, version and tombstone checks (extracted/common/projections.py);
each ``apply_*(data, seq)`` adds what only the choice service knows.
"""

from __future__ import annotations

from typing import Any

from extracted.choice_service.choices.models import Choice, QuestionRef
from extracted.common.projections import (
    any_deleted,
    from_elsewhere,
    upsert_newer,
)
from strangler.api.fields import TEXT_MAX_LENGTH
from strangler.consumer.handlers import Handlers
from strangler.events.fields import int_field, text_field, timestamp_field


def apply_question_saved(data: dict[str, Any], seq: int) -> None:
    """``question.created`` and ``question.updated``: who may change its choices."""
    values = {
        "created_by_id": int_field(data, "created_by"),
        "question_text": text_field(data, "question_text", max_length=TEXT_MAX_LENGTH),
        "pub_date": timestamp_field(data, "pub_date"),
    }
    upsert_newer(QuestionRef, int_field(data, "id"), seq, values)


def apply_question_deleted(data: dict[str, Any], seq: int) -> None:
    """The question goes from the projection and its choices go with it."""
    question_id = int_field(data, "id")
    Choice.objects.filter(question_id=question_id).delete()
    QuestionRef.objects.filter(pk=question_id).delete()


def apply_choice_saved(data: dict[str, Any], seq: int) -> None:
    """``choice.created`` and ``choice.updated``, with the producer's choice id."""
    values = {
        "question_id": int_field(data, "question"),
        "choice_text": text_field(data, "choice_text", max_length=TEXT_MAX_LENGTH),
    }
    if any_deleted(question=values["question_id"]):
        return
    upsert_newer(Choice, int_field(data, "id"), seq, values)


def apply_choice_deleted(data: dict[str, Any], seq: int) -> None:
    Choice.objects.filter(pk=int_field(data, "id")).delete()


handlers = Handlers()
handlers.register("question.created", from_elsewhere(apply_question_saved))
handlers.register("question.updated", from_elsewhere(apply_question_saved))
handlers.register("question.deleted", from_elsewhere(apply_question_deleted))
handlers.register("choice.created", from_elsewhere(apply_choice_saved))
handlers.register("choice.updated", from_elsewhere(apply_choice_saved))
handlers.register("choice.deleted", from_elsewhere(apply_choice_deleted))
