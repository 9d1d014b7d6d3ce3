"""Applying other producers' events to the vote service's tables: the monolith's votes while
it owns them, and the choices and question deletions of whoever owns those.

The consumer (settings ``STRANGLER_CONSUMER``) calls the registered handlers inside its apply
transaction, after its inbox, version and tombstone checks (extracted/common/projections.py);
each ``apply_*(data, seq)`` adds what only the vote service knows.
"""

from __future__ import annotations

from typing import Any

from extracted.common.projections import (
    any_deleted,
    from_elsewhere,
    upsert_newer,
)
from extracted.vote_service.votes.models import ChoiceRef, Vote
from strangler.consumer.handlers import Handlers
from strangler.events.fields import int_field, timestamp_field


def apply_vote_created(data: dict[str, Any], seq: int) -> None:
    """Insert the vote with its producer's id, unless its choice or question is gone.

    One vote per user per question holds here too. Events for different votes may arrive
    out of order, and upstream the later vote of a pair always has the higher id (the
    unique constraint serialises them), so the higher id wins: an older rival was retracted
    upstream and is removed, a newer one means this event is stale.
    """
    vote_id = int_field(data, "id")
    values = {
        "choice_id": int_field(data, "choice"),
        "question_id": int_field(data, "question"),
        "user_id": int_field(data, "user"),
        "created_at": timestamp_field(data, "created_at"),
    }
    if any_deleted(choice=values["choice_id"], question=values["question_id"]):
        return
    rival_ids = list(
        Vote.objects.filter(
            user_id=values["user_id"], question_id=values["question_id"]
        )
        .exclude(pk=vote_id)
        .values_list("pk", flat=True)
    )
    if any(rival_id > vote_id for rival_id in rival_ids):
        return
    if rival_ids:
        Vote.objects.filter(pk__in=rival_ids).delete()
    upsert_newer(Vote, vote_id, seq, values)


def apply_vote_deleted(data: dict[str, Any], seq: int) -> None:
    Vote.objects.filter(pk=int_field(data, "id")).delete()


def apply_choice_saved(data: dict[str, Any], seq: int) -> None:
    """``choice.created`` and ``choice.updated``: the projection keeps choice → question."""
    choice_id = int_field(data, "id")
    question_id = int_field(data, "question")
    if any_deleted(question=question_id):
        return
    upsert_newer(ChoiceRef, choice_id, seq, {"question_id": question_id})


def apply_choice_deleted(data: dict[str, Any], seq: int) -> None:
    """The choice goes from the projection and its votes go with it."""
    choice_id = int_field(data, "id")
    ChoiceRef.objects.filter(pk=choice_id).delete()
    Vote.objects.filter(choice_id=choice_id).delete()


def apply_question_deleted(data: dict[str, Any], seq: int) -> None:
    """The question's votes and choice refs go; its tombstone refuses late children."""
    question_id = int_field(data, "id")
    Vote.objects.filter(question_id=question_id).delete()
    ChoiceRef.objects.filter(question_id=question_id).delete()


handlers = Handlers()
handlers.register("vote.created", from_elsewhere(apply_vote_created))
handlers.register("vote.deleted", from_elsewhere(apply_vote_deleted))
handlers.register("choice.created", from_elsewhere(apply_choice_saved))
handlers.register("choice.updated", from_elsewhere(apply_choice_saved))
handlers.register("choice.deleted", from_elsewhere(apply_choice_deleted))
handlers.register("question.deleted", from_elsewhere(apply_question_deleted))
