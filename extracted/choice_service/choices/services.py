"""The only writers of choices. Each function is one transaction and records its event in
the service's outbox inside it (the reverse path: the monolith's consumer keeps
``polls_choice`` current, the vote service its choice projection). While the monolith owns
choices (mode ``reverse`` here) they raise ``WriteForbidden``: only the consumer writes then.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from extracted.choice_service.choices.models import Choice, QuestionRef
from strangler.dualwrite.guard import guard_write
from strangler.dualwrite.outbox import emit


def choice_data(choice: Choice) -> dict[str, Any]:
    """The event payload, in the API's field names (as the monolith publishes it)."""
    return {
        "id": choice.pk,
        "question": choice.question_id,
        "choice_text": choice.choice_text,
    }


def _publish(change: str, choice_id: int, data: dict[str, Any]) -> None:
    emit(entity="choice", type=f"choice.{change}", aggregate_id=choice_id, data=data)


@transaction.atomic
def choice_create(*, question: QuestionRef, choice_text: str) -> Choice:
    guard_write("choice")
    choice = Choice.objects.create(question_id=question.pk, choice_text=choice_text)
    _publish("created", choice.pk, choice_data(choice))
    return choice


@transaction.atomic
def choice_update(*, choice: Choice, choice_text: str) -> Choice:
    guard_write("choice")
    choice.choice_text = choice_text
    choice.save(update_fields=["choice_text"])
    _publish("updated", choice.pk, choice_data(choice))
    return choice


@transaction.atomic
def choice_delete(*, choice: Choice) -> None:
    """Delete the choice; the vote service drops its votes on ``choice.deleted``."""
    guard_write("choice")
    data = {"id": choice.pk, "question": choice.question_id}
    choice.delete()
    _publish("deleted", data["id"], data)
