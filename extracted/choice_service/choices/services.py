"""The only writers of choices. Each function is one transaction, so the reverse-path
outbox can append its event right here once this service owns the writes."""

from __future__ import annotations

from django.db import transaction

from extracted.choice_service.choices.models import Choice, QuestionRef


@transaction.atomic
def choice_create(*, question: QuestionRef, choice_text: str) -> Choice:
    return Choice.objects.create(question_id=question.pk, choice_text=choice_text)


@transaction.atomic
def choice_update(*, choice: Choice, choice_text: str) -> Choice:
    choice.choice_text = choice_text
    choice.save(update_fields=["choice_text"])
    return choice


@transaction.atomic
def choice_delete(*, choice: Choice) -> None:
    choice.delete()
