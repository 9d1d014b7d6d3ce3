"""What the polls service functions publish: one event per change, in the change's transaction.

The payloads use the API's field names (docs/api-contract.md), so a consumer applies an event
with the same vocabulary a client reads. ``emit`` decides from the entity's dual-write mode
whether the event is recorded (``forward``), skipped (``off``) or refused (``reverse``).
"""

from __future__ import annotations

from typing import Any

from monolith.polls.models import Choice, Question, Vote
from strangler.dualwrite.outbox import emit


def question_data(question: Question) -> dict[str, Any]:
    return {
        "id": question.pk,
        "question_text": question.question_text,
        "pub_date": question.pub_date,
        "created_by": question.created_by_id,
    }


def choice_data(choice: Choice) -> dict[str, Any]:
    return {
        "id": choice.pk,
        "question": choice.question_id,
        "choice_text": choice.choice_text,
    }


def vote_data(vote: Vote) -> dict[str, Any]:
    return {
        "id": vote.pk,
        "choice": vote.choice_id,
        "question": vote.question_id,
        "user": vote.user_id,
        "created_at": vote.created_at,
    }


def publish(entity: str, change: str, aggregate_id: int, data: dict[str, Any]) -> None:
    emit(entity=entity, type=f"{entity}.{change}", aggregate_id=aggregate_id, data=data)
