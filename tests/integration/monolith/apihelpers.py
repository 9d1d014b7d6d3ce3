"""Assertions shared by the API tests: the error shape, and that nothing was written."""

from __future__ import annotations

from typing import Any

from monolith.polls.models import Choice, Question, Vote


def row_counts() -> dict[str, int]:
    return {
        "questions": Question.objects.count(),
        "choices": Choice.objects.count(),
        "votes": Vote.objects.count(),
    }


def assert_error(
    response: Any, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """The response is ``status`` with the stable error body; ``field`` is named if given."""
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    if field is not None:
        assert field in error["fields"], error
        assert error["fields"][field], error
    return error
