"""The reverse path: the vote and choice services' events applied to the legacy tables.

Once a service owns an entity's writes (mode ``reverse`` here), ``polls_vote`` and
``polls_choice`` are written only by these handlers, so the monolith's reads, its admin and a
rollback to an earlier stage still see every change. The consumer (settings
``STRANGLER_CONSUMER``, ``strangler consume --service monolith``) runs them inside its apply
transaction under ``applying_remote_events``: the write guard lets them through and ``emit``
records nothing, so nothing echoes back. Its inbox, version and tombstone checks have already
dropped duplicates, stale and deleted aggregates; the handlers add the legacy schema's rules.

Rows keep the service's ids. A service's ids come from its own sequence, which
``strangler sync cutover-sequences`` moved past the legacy ids, and the legacy sequences are
moved past every id applied here, so a rollback to monolith writes never reuses one.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, Model

from monolith.polls.models import Choice, Question, Vote
from strangler.consumer.handlers import Handlers
from strangler.dualwrite.outbox import default_source
from strangler.events import Event
from strangler.events.fields import int_field, text_field, timestamp_field

handlers = Handlers()


def _own(event: Event) -> bool:
    """The monolith's own forward events reach its queue too (same exchange and types)."""
    return event.source == default_source()


_SEQUENCE_PAST = """
SELECT setval(pg_get_serial_sequence(%(table)s, 'id'), %(id)s)
WHERE %(id)s > COALESCE(
    pg_sequence_last_value(pg_get_serial_sequence(%(table)s, 'id')::regclass), 0)
"""


def _keep_sequence_past(model: type[Model], row_id: int) -> None:
    """Move the legacy id sequence past ``row_id`` (SQLite's AUTOINCREMENT does it itself)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _SEQUENCE_PAST, {"table": model._meta.db_table, "id": row_id}
            )


@handlers.on("vote.created")
def vote_created(event: Event) -> None:
    """Insert the vote with the service's id, unless its choice or user is gone here.

    As in the vote service, the higher id of two votes by one user on one question wins: the
    lower one was retracted upstream and its ``vote.deleted`` is on its way.
    """
    if _own(event):
        return
    data = event.data
    vote = Vote(
        id=int_field(data, "id"),
        choice_id=int_field(data, "choice"),
        question_id=int_field(data, "question"),
        user_id=int_field(data, "user"),
        created_at=timestamp_field(data, "created_at"),
    )
    parents_exist = (
        Choice.objects.filter(pk=vote.choice_id, question_id=vote.question_id)
        .filter(Exists(get_user_model().objects.filter(pk=vote.user_id)))
        .exists()
    )
    if not parents_exist:
        return
    rival_ids = list(
        Vote.objects.filter(user_id=vote.user_id, question_id=vote.question_id)
        .exclude(pk=vote.pk)
        .values_list("pk", flat=True)
    )
    if any(rival_id > vote.pk for rival_id in rival_ids):
        return
    if rival_ids:
        Vote.objects.filter(pk__in=rival_ids).delete()
    Vote.objects.bulk_create(
        [vote],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["choice_id", "question_id", "user_id", "created_at"],
    )
    _keep_sequence_past(Vote, vote.pk)


@handlers.on("vote.deleted")
def vote_deleted(event: Event) -> None:
    if not _own(event):
        Vote.objects.filter(pk=int_field(event.data, "id")).delete()


@handlers.on("choice.created", "choice.updated")
def choice_saved(event: Event) -> None:
    """Insert or update the choice with the service's id, unless its question is gone."""
    if _own(event):
        return
    data = event.data
    choice = Choice(
        id=int_field(data, "id"),
        question_id=int_field(data, "question"),
        choice_text=text_field(
            data,
            "choice_text",
            max_length=Choice._meta.get_field("choice_text").max_length,
        ),
    )
    if not Question.objects.filter(pk=choice.question_id).exists():
        return
    Choice.objects.bulk_create(
        [choice],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["question_id", "choice_text"],
    )
    _keep_sequence_past(Choice, choice.pk)


@handlers.on("choice.deleted")
def choice_deleted(event: Event) -> None:
    """Delete the choice and, as the monolith's own delete does, its votes."""
    if not _own(event):
        Choice.objects.filter(pk=int_field(event.data, "id")).delete()
