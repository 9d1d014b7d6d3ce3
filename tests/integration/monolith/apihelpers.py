"""Assertions shared by the API tests: the error shape, and that nothing was written."""

from __future__ import annotations

from monolith.polls.models import Choice, Question, Vote
from tests.integration.servicehelpers import assert_error

__all__ = ["assert_error", "row_counts"]


def row_counts() -> dict[str, int]:
    return {
        "questions": Question.objects.count(),
        "choices": Choice.objects.count(),
        "votes": Vote.objects.count(),
    }
