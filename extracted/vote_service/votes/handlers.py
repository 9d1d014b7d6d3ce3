"""Applying the monolith's events to the vote service's tables while the monolith owns writes.

Each function takes the event's ``data`` and ``seq`` and is idempotent and stale-safe (see
``extracted.common.projections``): applying an event twice is applying it once, an older
``seq`` never overwrites a newer one, and a deleted vote, choice or question stays deleted.
The consumer calls them through :data:`HANDLERS`, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Q

from extracted.common.projections import (
    bury,
    int_field,
    timestamp_field,
    upsert_newer,
)
from extracted.vote_service.votes.models import ChoiceRef, Tombstone, Vote


@transaction.atomic
def apply_vote_created(data: dict[str, Any], seq: int) -> None:
    """Insert the vote with the monolith's id, unless it, its choice or question is gone.

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
    gone = Tombstone.objects.filter(
        Q(entity="vote", aggregate_id=vote_id, seq__gte=seq)
        | Q(entity="choice", aggregate_id=values["choice_id"])
        | Q(entity="question", aggregate_id=values["question_id"])
    )
    if gone.exists():
        return
    rivals = Vote.objects.filter(
        user_id=values["user_id"], question_id=values["question_id"]
    ).exclude(pk=vote_id)
    rival_ids = list(rivals.values_list("pk", flat=True))
    if any(rival_id > vote_id for rival_id in rival_ids):
        return
    if rival_ids:
        Vote.objects.filter(pk__in=rival_ids).delete()
    upsert_newer(Vote, vote_id, seq, values)


@transaction.atomic
def apply_vote_deleted(data: dict[str, Any], seq: int) -> None:
    vote_id = int_field(data, "id")
    Vote.objects.filter(pk=vote_id, seq__lt=seq).delete()
    bury(Tombstone, "vote", vote_id, seq)


@transaction.atomic
def apply_choice_saved(data: dict[str, Any], seq: int) -> None:
    """``choice.created`` and ``choice.updated``: the projection keeps choice → question."""
    choice_id = int_field(data, "id")
    question_id = int_field(data, "question")
    gone = Tombstone.objects.filter(
        Q(entity="choice", aggregate_id=choice_id, seq__gte=seq)
        | Q(entity="question", aggregate_id=question_id)
    )
    if gone.exists():
        return
    upsert_newer(ChoiceRef, choice_id, seq, {"question_id": question_id})


@transaction.atomic
def apply_choice_deleted(data: dict[str, Any], seq: int) -> None:
    """The choice goes from the projection and its votes go with it."""
    choice_id = int_field(data, "id")
    ChoiceRef.objects.filter(pk=choice_id, seq__lt=seq).delete()
    Vote.objects.filter(choice_id=choice_id).delete()
    bury(Tombstone, "choice", choice_id, seq)


@transaction.atomic
def apply_question_deleted(data: dict[str, Any], seq: int) -> None:
    """The question's votes and choice refs go; late events for them are refused."""
    question_id = int_field(data, "id")
    Vote.objects.filter(question_id=question_id).delete()
    ChoiceRef.objects.filter(question_id=question_id).delete()
    bury(Tombstone, "question", question_id, seq)


HANDLERS: dict[str, Callable[[dict[str, Any], int], None]] = {
    "vote.created": apply_vote_created,
    "vote.deleted": apply_vote_deleted,
    "choice.created": apply_choice_saved,
    "choice.updated": apply_choice_saved,
    "choice.deleted": apply_choice_deleted,
    "question.deleted": apply_question_deleted,
}
