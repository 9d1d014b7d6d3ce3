"""Reads of votes: the list queryset with its filters."""

from __future__ import annotations

from django.db.models import QuerySet

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
