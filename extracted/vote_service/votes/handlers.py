"""Applying other producers' events to the vote service's tables: the monolith's votes while
it owns them, and the choices and question deletions of whoever owns those.

The consumer (settings ``STRANGLER_CONSUMER``) calls the registered handlers inside its apply
transaction, after its inbox, version and tombstone checks (extracted/common/projections.py);
each ``apply_*(data, seq)`` adds what only the vote service knows; ``vote.created``, the bulk
of the traffic, is applied a run of events at a time.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import Q

from extracted.common.projections import (
    any_deleted,
    deleted_among,
    from_elsewhere,
    from_elsewhere_batch,
    upsert_newer,
)
from extracted.vote_service.votes.models import ChoiceRef, Vote
from strangler.consumer.handlers import Handlers
from strangler.events.fields import int_field, timestamp_field


class _Row(NamedTuple):
    """A vote as stored, in ``votes_vote``'s terms."""

    id: int
    choice_id: int
    question_id: int
    user_id: int
    created_at: datetime
    seq: int


def apply_votes_created(items: list[tuple[dict[str, Any], int]]) -> None:
    """Insert the votes with their producer's ids, unless a vote's choice or question is gone.

    One vote per user per question holds here too. Events for different votes may arrive
    out of order, and upstream the later vote of a pair always has the higher id (the
    unique constraint serialises them), so the higher id wins: an older rival was retracted
    upstream and is removed, a newer one means this event is stale.

    A run of events costs a constant number of statements: the parents' tombstones, the
    rows the run can touch (its ids and its (user, question) pairs, locked), then one delete
    and one insert of what differs after applying the events one by one in memory.
    """
    votes = [_vote_row(data, seq) for data, seq in items]
    gone = deleted_among(
        choice={vote.choice_id for vote in votes},
        question={vote.question_id for vote in votes},
    )
    votes = [
        vote
        for vote in votes
        if ("choice", vote.choice_id) not in gone
        and ("question", vote.question_id) not in gone
    ]
    if not votes:
        return
    before = _lock_rows(votes)
    after = _apply_in_memory(before, votes)
    outdated = [pk for pk, row in before.items() if after.get(pk) != row]
    if outdated:
        Vote.objects.filter(pk__in=outdated).delete()
    Vote.objects.bulk_create(
        [
            Vote(**row._asdict())
            for pk, row in sorted(after.items())
            if before.get(pk) != row
        ],
        ignore_conflicts=True,
    )


def _vote_row(data: dict[str, Any], seq: int) -> _Row:
    return _Row(
        id=int_field(data, "id"),
        choice_id=int_field(data, "choice"),
        question_id=int_field(data, "question"),
        user_id=int_field(data, "user"),
        created_at=timestamp_field(data, "created_at"),
        seq=seq,
    )


def _lock_rows(votes: list[_Row]) -> dict[int, _Row]:
    users_by_question: dict[int, set[int]] = defaultdict(set)
    for vote in votes:
        users_by_question[vote.question_id].add(vote.user_id)
    condition = Q(pk__in={vote.id for vote in votes})
    for question_id, user_ids in users_by_question.items():
        condition |= Q(question_id=question_id, user_id__in=user_ids)
    rows = (
        Vote.objects.select_for_update()
        .filter(condition)
        .order_by("pk")
        .values_list(*_Row._fields)
    )
    return {row[0]: _Row(*row) for row in rows}


def _apply_in_memory(rows: dict[int, _Row], votes: list[_Row]) -> dict[int, _Row]:
    """``rows`` after each vote in turn: a rival with a higher id makes it stale, a lower one
    goes; an existing vote is overwritten only by a newer seq."""
    rows = dict(rows)
    holders = {(row.user_id, row.question_id): pk for pk, row in rows.items()}
    for vote in votes:
        pair = (vote.user_id, vote.question_id)
        rival = holders.get(pair)
        if rival is not None and rival != vote.id:
            if rival > vote.id:
                continue
            del rows[rival], holders[pair]
        current = rows.get(vote.id)
        if current is not None:
            if current.seq >= vote.seq:
                continue
            del holders[(current.user_id, current.question_id)]
        rows[vote.id] = vote
        holders[pair] = vote.id
    return rows


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
handlers.register_batch("vote.created", from_elsewhere_batch(apply_votes_created))
handlers.register("vote.deleted", from_elsewhere(apply_vote_deleted))
handlers.register("choice.created", from_elsewhere(apply_choice_saved))
handlers.register("choice.updated", from_elsewhere(apply_choice_saved))
handlers.register("choice.deleted", from_elsewhere(apply_choice_deleted))
handlers.register("question.deleted", from_elsewhere(apply_question_deleted))
