"""Claiming outbox rows so that parallel relays never share a row and never reorder an
aggregate.

A relay locks up to N unsent rows with ``FOR UPDATE SKIP LOCKED`` and then drops from its batch
every row that has an earlier unsent row of the same aggregate outside the batch (locked by
another relay, or waiting out a backoff). Within a batch rows go out in id order, which is seq
order per aggregate because ``emit`` holds the aggregate's counter row until commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import F

from strangler.dualwrite.models import OutboxEvent

MAX_BACKOFF_SECONDS = 60


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_id: str
    type: str
    aggregate_type: str
    aggregate_id: str
    seq: int
    body: bytes


_PG_CLAIM = """
WITH claimed AS (
    SELECT id, event_id, type, aggregate_type, aggregate_id, seq, envelope
    FROM {table}
    WHERE sent_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
    ORDER BY id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
SELECT c.id, c.event_id, c.type, c.aggregate_type, c.aggregate_id, c.seq,
       c.envelope::text,
       EXISTS (
           SELECT 1 FROM {table} p
           WHERE p.sent_at IS NULL
             AND p.aggregate_type = c.aggregate_type
             AND p.aggregate_id = c.aggregate_id
             AND p.seq < c.seq
             AND p.id NOT IN (SELECT id FROM claimed)
       ) AS blocked
FROM claimed c
ORDER BY c.id
"""

# SQLite has no row locks: taking the database write lock first serialises relays instead.
_SQLITE_LOCK = "UPDATE {table} SET attempts = attempts WHERE id = -1"
_SQLITE_CLAIM = """
SELECT id, event_id, type, aggregate_type, aggregate_id, seq, envelope,
       CASE WHEN next_attempt_at IS NOT NULL AND next_attempt_at > %s THEN 1 ELSE 0 END
FROM {table} WHERE sent_at IS NULL ORDER BY id LIMIT %s
"""


def claim_batch(limit: int, using: str = DEFAULT_DB_ALIAS) -> list[OutboxRow]:
    """Lock and return up to ``limit`` publishable rows; call inside ``transaction.atomic``."""
    connection = connections[using]
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_CLAIM.format(table=table), [now, limit])
        else:
            cursor.execute(_SQLITE_LOCK.format(table=table))
            cursor.execute(_SQLITE_CLAIM.format(table=table), [now, limit])
        fetched = cursor.fetchall()
    rows: list[OutboxRow] = []
    blocked_aggregates: set[tuple[str, str]] = set()
    for id_, event_id, type_, agg_type, agg_id, seq, envelope, blocked in fetched:
        aggregate = (agg_type, agg_id)
        if blocked or aggregate in blocked_aggregates:
            blocked_aggregates.add(aggregate)
            continue
        body = envelope if isinstance(envelope, str) else str(envelope)
        rows.append(
            OutboxRow(id_, str(event_id), type_, agg_type, agg_id, seq, body.encode())
        )
    return rows


def mark_sent(ids: list[int], using: str = DEFAULT_DB_ALIAS) -> None:
    if ids:
        OutboxEvent.objects.using(using).filter(id__in=ids).update(
            sent_at=datetime.now(UTC), attempts=F("attempts") + 1, last_error=""
        )


def mark_failed(failures: dict[int, str], using: str = DEFAULT_DB_ALIAS) -> None:
    """Record why each row failed and push its next attempt back exponentially."""
    now = datetime.now(UTC)
    for row in OutboxEvent.objects.using(using).filter(id__in=list(failures)):
        delay = min(2**row.attempts, MAX_BACKOFF_SECONDS)
        OutboxEvent.objects.using(using).filter(id=row.id).update(
            attempts=F("attempts") + 1,
            last_error=failures[row.id][:2000],
            next_attempt_at=now + timedelta(seconds=delay),
        )
