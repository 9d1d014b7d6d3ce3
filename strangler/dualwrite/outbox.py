"""``emit``: record an event in the outbox inside the caller's transaction."""

from __future__ import annotations

import functools
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections

from strangler.dualwrite import emitted
from strangler.dualwrite.guard import (
    WriteForbidden,
    is_applying_remote_events,
    is_dry_run,
)
from strangler.dualwrite.models import AggregateSequence, Mode, OutboxEvent
from strangler.dualwrite.modes import config, get_mode
from strangler.events.envelope import EVENT_TYPES, Event, UnknownEventType


class EventJSONEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder without its cut of datetimes to milliseconds: a row a consumer
    writes from an event must equal the source row (``strangler sync verify`` compares)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        return super().default(o)


class TransactionRequired(RuntimeError):
    """``emit`` was called outside ``transaction.atomic``: the event could outlive a rollback."""


def known_types() -> frozenset[str]:
    return frozenset(config().get("EVENT_TYPES", EVENT_TYPES))


def default_source() -> str:
    return config().get("SOURCE") or getattr(settings, "SERVICE_NAME", "") or "unknown"


def emit(
    *,
    entity: str,
    type: str,
    aggregate_id: int | str,
    data: dict[str, Any],
    source: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> Event | None:
    """Write ``type`` for ``aggregate_id`` to the outbox in the current transaction.

    Returns the event, or ``None`` when ``entity`` is ``off``, the reverse consumer is
    applying a remote event (which must not echo back), or in a rolled-back dry run. Raises
    ``TransactionRequired`` outside ``transaction.atomic``, ``WriteForbidden`` when ``entity``
    is in ``reverse`` mode, and ``InvalidEvent`` for a bad type, id or payload.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        raise TransactionRequired(
            f"emit({type!r}) must run inside transaction.atomic so that the event is "
            "committed or rolled back with the change it describes"
        )
    if type not in known_types():
        raise UnknownEventType(f"type: unknown event type {type!r}")
    mode = get_mode(entity, using)
    if is_applying_remote_events() or is_dry_run():
        return None
    if mode == Mode.REVERSE:
        raise WriteForbidden(
            f"{entity} is in reverse mode: this database may not originate {type!r}; "
            f"only the reverse consumer writes {entity} here"
        )
    if mode == Mode.OFF:
        return None
    event = Event(
        id=uuid.uuid4(),
        type=type,
        source=source or default_source(),
        aggregate_id=str(aggregate_id),
        seq=1,
        occurred_at=datetime.now(UTC),
        data=json.loads(json.dumps(data, cls=EventJSONEncoder)),
    )
    seq = _insert(event, using)
    emitted.record(event.aggregate_type, event.aggregate_id, seq, using)
    return Event(
        id=event.id,
        type=event.type,
        source=event.source,
        aggregate_id=event.aggregate_id,
        seq=seq,
        occurred_at=event.occurred_at,
        data=event.data,
    )


_PG_INSERT = """
WITH next AS (
    INSERT INTO {seq_table} (aggregate_type, aggregate_id, seq) VALUES (%s, %s, 1)
    ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET seq = {seq_table}.seq + 1
    RETURNING seq
)
INSERT INTO {outbox_table}
    (event_id, type, aggregate_type, aggregate_id, seq, envelope, created_at, attempts,
     last_error)
SELECT %s, %s, %s, %s, next.seq,
       jsonb_set(%s::jsonb, '{{seq}}', to_jsonb(next.seq)), %s, 0, ''
FROM next
RETURNING seq
"""

_NEXT_SEQ = """
INSERT INTO {seq_table} (aggregate_type, aggregate_id, seq) VALUES (%s, %s, 1)
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET seq = {seq_table}.seq + 1
RETURNING seq
"""

# Seq hand-off: an aggregate this database first knew from another producer's events
# continues above the seq its consumer applied, so every consumer of the aggregate sees a
# newer event, not a stale one. The consumer raises the counter row as it applies
# (``strangler.consumer.apply.raise_counters``), so the upsert above needs no lookup.


# PostgreSQL plans the statement above once per connection instead of on every emit (half
# of what an event costs the database). Prepared statements belong to the session and
# survive a rollback; a pooler that resets sessions behind Django's back (PgBouncer in
# transaction mode, DISCARD ALL) needs ``STRANGLER_DUALWRITE["PREPARED_STATEMENTS"] =
# False``.
_PREPARED = "strangler_outbox_emit"
_PG_PARAM_TYPES = (
    "text",
    "text",
    "uuid",
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
)
_PREPARE = f"PREPARE {_PREPARED} ({', '.join(_PG_PARAM_TYPES)}) AS "
_EXECUTE = f"EXECUTE {_PREPARED} ({', '.join(['%s'] * len(_PG_PARAM_TYPES))})"


def _pg_execute(connection, cursor, params: list) -> None:
    if not config().get("PREPARED_STATEMENTS", True):
        cursor.execute(_sql(_PG_INSERT), params)
        return
    raw = connection.connection
    if getattr(connection, "_strangler_prepared_on", None) is not raw:
        numbered = iter(range(1, len(params) + 1))
        body = re.sub("%s", lambda _: f"${next(numbered)}", _sql(_PG_INSERT))
        cursor.execute(_PREPARE + body)
        connection._strangler_prepared_on = raw
    cursor.execute(_EXECUTE, params)


@functools.cache
def _sql(template: str) -> str:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    return template.format(
        seq_table=quote(AggregateSequence._meta.db_table),
        outbox_table=quote(OutboxEvent._meta.db_table),
    )


def _insert(event: Event, using: str) -> int:
    """Allocate the aggregate's next seq and insert the outbox row; one round trip on
    PostgreSQL. The counter row stays locked until commit, so two transactions on the same
    aggregate commit their events in seq order."""
    connection = connections[using]
    key = [event.aggregate_type, event.aggregate_id]
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            params = [
                *key,
                str(event.id),
                event.type,
                *key,
                event.to_json().decode(),
                now,
            ]
            _pg_execute(connection, cursor, params)
            return cursor.fetchone()[0]
        cursor.execute(_sql(_NEXT_SEQ), key)
        seq = cursor.fetchone()[0]
    envelope = event.to_dict() | {"seq": seq}
    OutboxEvent.objects.using(using).create(
        event_id=event.id,
        type=event.type,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        seq=seq,
        envelope=envelope,
        created_at=now,
    )
    return seq


def unsent_count(using: str = DEFAULT_DB_ALIAS) -> int:
    return OutboxEvent.objects.using(using).filter(sent_at__isnull=True).count()


def lag_seconds(using: str = DEFAULT_DB_ALIAS) -> float:
    """Age of the oldest unsent event in seconds; 0 when the outbox is drained."""
    oldest = (
        OutboxEvent.objects.using(using)
        .filter(sent_at__isnull=True)
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    if oldest is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - oldest).total_seconds())
