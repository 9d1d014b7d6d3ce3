"""The only writers of questions, choices and votes.

Views validate, call one of these, and serialize. Each function is one transaction and
publishes its event (monolith/polls/events.py) inside it, so the outbox row commits or rolls
back with the change. An entity in ``reverse`` mode is owned by a service: writing it here
raises ``WriteForbidden`` and the whole transaction rolls back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from monolith.polls.events import choice_data, publish, question_data, vote_data
from monolith.polls.models import Choice, Question, Vote
from strangler.dbutil import violates
from strangler.dualwrite.guard import guard_write

VOTE_SQLITE_COLUMNS = "polls_vote.user_id, polls_vote.question_id"
VOTE_UNIQUE_CONSTRAINT = "polls_vote_one_per_user_per_question"
QUESTION_UPDATABLE_FIELDS = frozenset({"question_text", "pub_date"})


class AlreadyVoted(Exception):
    """The user already has a vote on this question."""

    def __init__(self, *, user_id: int, question_id: int) -> None:
        super().__init__(f"User {user_id} already voted on question {question_id}.")
        self.user_id = user_id
        self.question_id = question_id


class ChoiceNotFound(Exception):
    """The choice to vote for does not exist (any more)."""

    def __init__(self, *, choice_id: int) -> None:
        super().__init__(f"Choice {choice_id} does not exist.")
        self.choice_id = choice_id


@transaction.atomic
def question_create(
    *, created_by_id: int, question_text: str, pub_date: datetime | None = None
) -> Question:
    guard_write("question")
    question = Question(created_by_id=created_by_id, question_text=question_text)
    if pub_date is not None:
        question.pub_date = pub_date
    question.save()
    publish("question", "created", question.pk, question_data(question))
    return question


@transaction.atomic
def question_update(*, question: Question, **fields: Any) -> Question:
    unknown = set(fields) - QUESTION_UPDATABLE_FIELDS
    if unknown:
        raise TypeError(f"question_update() cannot set {', '.join(sorted(unknown))}")
    guard_write("question")
    for name, value in fields.items():
        setattr(question, name, value)
    if fields:
        question.save(update_fields=list(fields))
        publish("question", "updated", question.pk, question_data(question))
    return question


@transaction.atomic
def question_delete(*, question: Question) -> None:
    """Delete the question with its choices and votes; one ``question.deleted`` event tells
    each service to drop what it holds of them."""
    guard_write("question")
    question_id = question.pk
    question.delete()
    publish("question", "deleted", question_id, {"id": question_id})


@transaction.atomic
def choice_create(*, question: Question, choice_text: str) -> Choice:
    guard_write("choice")
    choice = Choice.objects.create(question=question, choice_text=choice_text)
    publish("choice", "created", choice.pk, choice_data(choice))
    return choice


@transaction.atomic
def choice_update(*, choice: Choice, choice_text: str) -> Choice:
    guard_write("choice")
    choice.choice_text = choice_text
    choice.save(update_fields=["choice_text"])
    publish("choice", "updated", choice.pk, choice_data(choice))
    return choice


@transaction.atomic
def choice_delete(*, choice: Choice) -> None:
    """Delete the choice and its votes; consumers drop the votes on ``choice.deleted``."""
    guard_write("choice")
    data = {"id": choice.pk, "question": choice.question_id}
    choice.delete()
    publish("choice", "deleted", data["id"], data)


@transaction.atomic
def vote_cast(*, user_id: int, choice_id: int) -> Vote:
    """Record the user's vote; ``AlreadyVoted`` if they voted on the question before.

    The unique (user, question) constraint decides, not a Python pre-check, so concurrent
    attempts cannot both succeed; the savepoint keeps the outer transaction usable.
    """
    guard_write("vote")
    question_id = (
        Choice.objects.filter(pk=choice_id)
        .values_list("question_id", flat=True)
        .first()
    )
    if question_id is None:
        raise ChoiceNotFound(choice_id=choice_id)
    try:
        with transaction.atomic():
            vote = Vote.objects.create(
                user_id=user_id, choice_id=choice_id, question_id=question_id
            )
    except IntegrityError as error:
        if violates(error, VOTE_UNIQUE_CONSTRAINT, sqlite_columns=VOTE_SQLITE_COLUMNS):
            raise AlreadyVoted(user_id=user_id, question_id=question_id) from error
        raise
    publish("vote", "created", vote.pk, vote_data(vote))
    return vote


@transaction.atomic
def vote_retract(*, vote: Vote) -> None:
    guard_write("vote")
    data = vote_data(vote)
    vote.delete()
    publish("vote", "deleted", data["id"], data)
