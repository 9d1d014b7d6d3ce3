"""The only writers of votes. Each function is one transaction and records its event in the
service's outbox inside it (the reverse path: the monolith's consumer keeps ``polls_vote``
current). While the monolith owns votes (mode ``reverse`` here) they raise ``WriteForbidden``:
only the consumer writes votes then.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from extracted.vote_service.votes.models import ChoiceRef, Vote
from strangler.dbutil import violates
from strangler.dualwrite.guard import guard_write
from strangler.dualwrite.outbox import emit

VOTE_SQLITE_COLUMNS = "votes_vote.user_id, votes_vote.question_id"
VOTE_UNIQUE_CONSTRAINT = "votes_vote_one_per_user_per_question"


class AlreadyVoted(Exception):
    """The user already has a vote on this question."""

    def __init__(self, *, user_id: int, question_id: int) -> None:
        super().__init__(f"User {user_id} already voted on question {question_id}.")
        self.user_id = user_id
        self.question_id = question_id


class ChoiceNotFound(Exception):
    """The choice is unknown to this service's projection of choices."""

    def __init__(self, *, choice_id: int) -> None:
        super().__init__(f"Choice {choice_id} does not exist.")
        self.choice_id = choice_id


def vote_data(vote: Vote) -> dict[str, Any]:
    """The event payload, in the API's field names (as the monolith publishes it)."""
    return {
        "id": vote.pk,
        "choice": vote.choice_id,
        "question": vote.question_id,
        "user": vote.user_id,
        "created_at": vote.created_at,
    }


@transaction.atomic
def vote_cast(*, user_id: int, choice_id: int) -> Vote:
    """Record the user's vote; ``AlreadyVoted`` if they voted on the question before.

    The unique (user, question) constraint decides, inside a savepoint, so concurrent
    attempts cannot both succeed and the outer transaction stays usable. The id comes from
    this service's sequence (``strangler sync cutover-sequences`` moved it past the legacy ids).
    """
    guard_write("vote")
    question_id = (
        ChoiceRef.objects.filter(pk=choice_id)
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
    emit(entity="vote", type="vote.created", aggregate_id=vote.pk, data=vote_data(vote))
    return vote


@transaction.atomic
def vote_retract(*, vote: Vote) -> None:
    guard_write("vote")
    data = vote_data(vote)
    vote.delete()
    emit(entity="vote", type="vote.deleted", aggregate_id=data["id"], data=data)
