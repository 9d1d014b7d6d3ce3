"""Reads of votes: the list queryset with its filters."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from extracted.vote_service.votes.models import Vote


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


def vote_counts(*, question_id: int) -> dict[int, int]:
    """``{choice_id: votes}`` for one question, counted by the database."""
    rows = (
        Vote.objects.filter(question_id=question_id)
        .values("choice_id")
        .annotate(votes=Count("id"))
        .order_by()
    )
    return {row["choice_id"]: row["votes"] for row in rows}
