"""Apply events exactly once: inbox dedup, seq ordering and tombstones in the apply's own
transaction, with a constant number of statements per batch besides the handlers."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from strangler.consumer.handlers import Handlers
from strangler.consumer.models import AggregateVersion, InboxEvent
from strangler.dualwrite.guard import applying_remote_events
from strangler.events.envelope import Event


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"


Aggregate = tuple[str, str]
Version = tuple[int, bool]

# A no-op update still locks the row and returns its latest committed state; a new
# aggregate gets a seq 0 placeholder whose unique key serialises concurrent appliers.
_VERSION_LOCK = """
INSERT INTO {table} AS v (aggregate_type, aggregate_id, seq, deleted, updated_at)
VALUES {rows}
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET seq = v.seq
RETURNING aggregate_type, aggregate_id, seq, deleted
"""

_VERSION_WRITE = """
INSERT INTO {table} (aggregate_type, aggregate_id, seq, deleted, updated_at)
VALUES {rows}
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
SET seq = EXCLUDED.seq, deleted = EXCLUDED.deleted, updated_at = EXCLUDED.updated_at
"""

# Seq hand-off: this database may later produce events for an aggregate it has so far only
# consumed (a rollback from a service back to the monolith). Keeping its own counter at least
# at the applied seq makes ``emit`` continue above what every consumer has seen, without
# ``emit`` looking the version up on every call.
_COUNTER_RAISE = """
INSERT INTO {table} (aggregate_type, aggregate_id, seq)
VALUES {rows}
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
SET seq = {greatest}({table}.seq, excluded.seq)
"""

_INBOX_INSERT = """
INSERT INTO {table} (event_id, type, source, aggregate_id, seq, received_at)
VALUES {rows}
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""


def apply_events(
    events: list[Event], handlers: Handlers, using: str = DEFAULT_DB_ALIAS
) -> list[Outcome]:
    """Apply ``events`` in order in one transaction; return each one's outcome.

    Four statements whatever the batch size: the inbox insert, a lock on every touched
    aggregate's version row, the write of the new versions and the raise of this database's
    own seq counters to them (``raise_counters``); then the handlers, in
    delivery order, one call per run of consecutive applied events of one type
    (``Handlers.get_batch``). An event older than its aggregate's version (stored, or set by
    an earlier event of the batch) or after its deletion is stale. Any handler error rolls
    back the whole batch; callers retry event by event to isolate it. Every handler must
    exist (check with ``handlers.get`` first).
    """
    funcs = {event.type: handlers.get_batch(event.type) for event in events}
    with transaction.atomic(using=using), applying_remote_events():
        fresh = _record_inbox(events, using)
        versions = _lock_versions(
            {(e.aggregate_type, e.aggregate_id) for e in events if e.id in fresh}, using
        )
        outcomes, changed = decide(events, fresh, versions)
        _write_versions(changed, using)
        raise_counters(changed, using)
        for run in runs(events, outcomes):
            funcs[run[0].type](run)
    return outcomes


def runs(events: list[Event], outcomes: list[Outcome]) -> list[list[Event]]:
    """The applied events, split wherever the type changes: no run passes an applied event
    of another type, so each aggregate's events still reach the handlers in order."""
    result: list[list[Event]] = []
    for event, outcome in zip(events, outcomes, strict=True):
        if outcome is not Outcome.APPLIED:
            continue
        if result and result[-1][0].type == event.type:
            result[-1].append(event)
        else:
            result.append([event])
    return result


def decide(
    events: list[Event], fresh: set, versions: dict[Aggregate, Version]
) -> tuple[list[Outcome], dict[Aggregate, Version]]:
    """Each event's outcome, as if applied one by one in order from ``versions``, and the
    aggregates' new versions. ``fresh`` holds the ids the inbox had not seen."""
    unseen = set(fresh)
    outcomes: list[Outcome] = []
    changed: dict[Aggregate, Version] = {}
    for event in events:
        if event.id not in unseen:
            outcomes.append(Outcome.DUPLICATE)
            continue
        unseen.discard(event.id)
        key = (event.aggregate_type, event.aggregate_id)
        seq, deleted = versions.get(key, (0, False))
        if deleted or event.seq <= seq:
            outcomes.append(Outcome.STALE)
            continue
        versions[key] = changed[key] = (event.seq, event.is_deletion)
        outcomes.append(Outcome.APPLIED)
    return outcomes, changed


def _record_inbox(events: list[Event], using: str) -> set:
    """Insert every event id, returning those not seen before."""
    connection = connections[using]
    unique = sorted(
        {event.id: event for event in events}.values(), key=lambda e: e.id.hex
    )
    if not unique:
        return set()
    now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
    params: list = []
    for event in unique:
        event_id = event.id.hex if connection.vendor == "sqlite" else str(event.id)
        params += [event_id, event.type, event.source, event.aggregate_id, event.seq]
        params.append(now)
    sql = _INBOX_INSERT.format(
        table=connection.ops.quote_name(InboxEvent._meta.db_table),
        rows=", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(unique)),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = {str(row[0]).replace("-", "") for row in cursor.fetchall()}
    return {event.id for event in unique if event.id.hex in inserted}


def _lock_versions(keys: set[Aggregate], using: str) -> dict[Aggregate, Version]:
    """Lock the version rows of ``keys`` (in key order, so that concurrent appliers cannot
    deadlock) and return their current ``(seq, deleted)``."""
    if not keys:
        return {}
    connection = connections[using]
    now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
    params: list = []
    for aggregate_type, aggregate_id in sorted(keys):
        params += [aggregate_type, aggregate_id, False, now]
    sql = _VERSION_LOCK.format(
        table=connection.ops.quote_name(AggregateVersion._meta.db_table),
        rows=", ".join(["(%s, %s, 0, %s, %s)"] * len(keys)),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {
            (agg_type, agg_id): (seq, bool(deleted))
            for agg_type, agg_id, seq, deleted in cursor.fetchall()
        }


def _write_versions(changed: dict[Aggregate, Version], using: str) -> None:
    if not changed:
        return
    connection = connections[using]
    now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
    params: list = []
    for (aggregate_type, aggregate_id), (seq, deleted) in sorted(changed.items()):
        params += [aggregate_type, aggregate_id, seq, deleted, now]
    sql = _VERSION_WRITE.format(
        table=connection.ops.quote_name(AggregateVersion._meta.db_table),
        rows=", ".join(["(%s, %s, %s, %s, %s)"] * len(changed)),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def raise_counters(changed: dict[Aggregate, Version], using: str) -> None:
    """Raise this database's own seq counters (``strangler.dualwrite``) to the applied seqs."""
    if not changed or not apps.is_installed("strangler.dualwrite"):
        return
    from strangler.dualwrite.models import AggregateSequence

    connection = connections[using]
    params: list = []
    for (aggregate_type, aggregate_id), (seq, _deleted) in sorted(changed.items()):
        params += [aggregate_type, aggregate_id, seq]
    sql = _COUNTER_RAISE.format(
        table=connection.ops.quote_name(AggregateSequence._meta.db_table),
        rows=", ".join(["(%s, %s, %s)"] * len(changed)),
        greatest="GREATEST" if connection.vendor == "postgresql" else "MAX",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
