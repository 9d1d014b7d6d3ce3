"""Reads of questions, choices and votes: list querysets with their filters, and results."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from monolith.polls.models import Choice, Question, Vote


def question_list() -> QuerySet[Question]:
    return Question.objects.order_by("id")


def choice_list(*, question_id: int | None = None) -> QuerySet[Choice]:
    queryset = Choice.objects.order_by("id")
    if question_id is not None:
        queryset = queryset.filter(question_id=question_id)
    return queryset


def vote_list(
    *,
    choice_id: int | None = None,
    question_id: int | None = None,
    user_id: int | None = None,
) -> QuerySet[Vote]:
    queryset = Vote.objects.order_by("id")
    if choice_id is not None:
        queryset = queryset.filter(choice_id=choice_id)
    if question_id is not None:
        queryset = queryset.filter(question_id=question_id)
    if user_id is not None:
        queryset = queryset.filter(user_id=user_id)
    return queryset


def question_results(*, question_id: int) -> dict[str, Any] | None:
    """The question with each choice's vote count (choices by id), or None if it is missing.

    One query: the question LEFT JOINs its choices and their votes, grouped per choice, so a
    question without choices still yields its one row.
    """
    rows = list(
        Question.objects.filter(pk=question_id)
        .values("id", "question_text", "choices__id", "choices__choice_text")
        .annotate(votes=Count("choices__votes"))
        .order_by("choices__id")
    )
    if not rows:
        return None
    choices = [
        {
            "id": row["choices__id"],
            "choice_text": row["choices__choice_text"],
            "votes": row["votes"],
        }
        for row in rows
        if row["choices__id"] is not None
    ]
    return {
        "id": rows[0]["id"],
        "question_text": rows[0]["question_text"],
        "total_votes": sum(choice["votes"] for choice in choices),
        "choices": choices,
    }


def vote_counts(*, question_id: int) -> dict[int, int]:
    """``{choice_id: votes}`` for one question, counted by the database."""
    rows = (
        Vote.objects.filter(question_id=question_id)
        .values("choice_id")
        .annotate(votes=Count("id"))
        .order_by()
    )
    return {row["choice_id"]: row["votes"] for row in rows}
