"""Applying the monolith's events to the choice service's tables while the monolith owns
writes.

Each function takes the event's ``data`` and ``seq`` and is idempotent and stale-safe (see
``extracted.common.projections``): applying an event twice is applying it once, an older
``seq`` never overwrites a newer one, and a deleted choice or question stays deleted.
The consumer calls them through :data:`HANDLERS`, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Q

from extracted.choice_service.choices.models import Choice, QuestionRef, Tombstone
from extracted.common.projections import (
    bury,
    int_field,
    text_field,
    timestamp_field,
    upsert_newer,
)
from strangler.api.fields import TEXT_MAX_LENGTH


@transaction.atomic
def apply_question_saved(data: dict[str, Any], seq: int) -> None:
    """``question.created`` and ``question.updated``: who may change its choices."""
    question_id = int_field(data, "id")
    values = {
        "created_by_id": int_field(data, "created_by"),
        "question_text": text_field(data, "question_text", max_length=TEXT_MAX_LENGTH),
        "pub_date": timestamp_field(data, "pub_date"),
    }
    if Tombstone.objects.filter(
        entity="question", aggregate_id=question_id, seq__gte=seq
    ).exists():
        return
    upsert_newer(QuestionRef, question_id, seq, values)


@transaction.atomic
def apply_question_deleted(data: dict[str, Any], seq: int) -> None:
    """The question goes from the projection and its choices go with it."""
    question_id = int_field(data, "id")
    Choice.objects.filter(question_id=question_id).delete()
    QuestionRef.objects.filter(pk=question_id, seq__lt=seq).delete()
    bury(Tombstone, "question", question_id, seq)


@transaction.atomic
def apply_choice_saved(data: dict[str, Any], seq: int) -> None:
    """``choice.created`` and ``choice.updated``, with the monolith's choice id."""
    choice_id = int_field(data, "id")
    values = {
        "question_id": int_field(data, "question"),
        "choice_text": text_field(data, "choice_text", max_length=TEXT_MAX_LENGTH),
    }
    gone = Tombstone.objects.filter(
        Q(entity="choice", aggregate_id=choice_id, seq__gte=seq)
        | Q(entity="question", aggregate_id=values["question_id"])
    )
    if gone.exists():
        return
    upsert_newer(Choice, choice_id, seq, values)


@transaction.atomic
def apply_choice_deleted(data: dict[str, Any], seq: int) -> None:
    choice_id = int_field(data, "id")
    Choice.objects.filter(pk=choice_id, seq__lt=seq).delete()
    bury(Tombstone, "choice", choice_id, seq)


HANDLERS: dict[str, Callable[[dict[str, Any], int], None]] = {
    "question.created": apply_question_saved,
    "question.updated": apply_question_saved,
    "question.deleted": apply_question_deleted,
    "choice.created": apply_choice_saved,
    "choice.updated": apply_choice_saved,
    "choice.deleted": apply_choice_deleted,
}
