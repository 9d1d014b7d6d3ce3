"""Apply events exactly once: inbox dedup, seq ordering and tombstones in the apply's own
transaction."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from strangler.consumer.handlers import Handlers
from strangler.consumer.models import AggregateVersion, InboxEvent
from strangler.dualwrite.guard import applying_remote_events
from strangler.events.envelope import Event


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"


_VERSION_UPSERT = """
INSERT INTO {table} AS v (aggregate_type, aggregate_id, seq, deleted, updated_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
SET seq = EXCLUDED.seq, deleted = EXCLUDED.deleted, updated_at = EXCLUDED.updated_at
WHERE v.seq < EXCLUDED.seq AND NOT v.deleted
RETURNING seq
"""


def apply_events(
    events: list[Event], handlers: Handlers, using: str = DEFAULT_DB_ALIAS
) -> list[Outcome]:
    """Apply ``events`` in order in one transaction; return each one's outcome.

    Any handler error rolls back the whole batch; callers retry event by event to isolate it.
    Every handler must exist (check with ``handlers.get`` first).
    """
    funcs = [handlers.get(event.type) for event in events]
    connection = connections[using]
    with transaction.atomic(using=using), applying_remote_events():
        fresh = _record_inbox(events, using)
        outcomes: list[Outcome] = []
        table = connection.ops.quote_name(AggregateVersion._meta.db_table)
        now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
        with connection.cursor() as cursor:
            for event, func in zip(events, funcs, strict=True):
                if event.id not in fresh:
                    outcomes.append(Outcome.DUPLICATE)
                    continue
                fresh.discard(event.id)
                cursor.execute(
                    _VERSION_UPSERT.format(table=table),
                    [
                        event.aggregate_type,
                        event.aggregate_id,
                        event.seq,
                        event.is_deletion,
                        now,
                    ],
                )
                if cursor.fetchone() is None:
                    outcomes.append(Outcome.STALE)
                    continue
                func(event)
                outcomes.append(Outcome.APPLIED)
    return outcomes


def _record_inbox(events: list[Event], using: str) -> set:
    """Insert every event id, returning those not seen before (one statement)."""
    connection = connections[using]
    table = connection.ops.quote_name(InboxEvent._meta.db_table)
    unique = list({event.id: event for event in events}.values())
    now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(unique))
    params: list = []
    for event in unique:
        event_id = event.id.hex if connection.vendor == "sqlite" else str(event.id)
        params += [
            event_id,
            event.type,
            event.source,
            event.aggregate_id,
            event.seq,
            now,
        ]
    sql = (
        f"INSERT INTO {table} (event_id, type, source, aggregate_id, seq, received_at) "  # noqa: S608
        f"VALUES {rows} ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = {str(row[0]).replace("-", "") for row in cursor.fetchall()}
    return {event.id for event in unique if event.id.hex in inserted}
