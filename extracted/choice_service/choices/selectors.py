"""Reads of choices: the list queryset with its filter, and who may change a choice."""

from __future__ import annotations

from django.db.models import QuerySet

from extracted.choice_service.choices.models import Choice, QuestionRef


def choice_list(*, question_id: int | None = None) -> QuerySet[Choice]:
    queryset = Choice.objects.order_by("id")
    if question_id is not None:
        queryset = queryset.filter(question_id=question_id)
    return queryset


def question_creator_id(*, question_id: int) -> int | None:
    """The id of the user who created the question, or None if it is unknown here."""
    return (
        QuestionRef.objects.filter(pk=question_id)
        .values_list("created_by_id", flat=True)
        .first()
    )
