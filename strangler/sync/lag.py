"""Event lag from a producer's outbox: how long the oldest unpublished event has waited.

The dual-write outbox table is ``strangler_dualwrite_outboxevent`` in the producer's database (the
monolith's for forward sync, the service's for reverse sync). Lag is None ("n/a") when the
table does not exist or has no recognisable created/published timestamps.
"""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

from datetime import datetime

from strangler.sync.db import Database, quote

OUTBOX_TABLE = "strangler_dualwrite_outboxevent"
CREATED = ("created_at", "occurred_at")
PUBLISHED = ("published_at", "relayed_at", "sent_at")


def _columns(db: Database, table: str) -> tuple[str, str] | None:
    columns = db.columns(table)
    created = next((c for c in CREATED if c in columns), None)
    published = next((c for c in PUBLISHED if c in columns), None)
    return (created, published) if created and published else None


def oldest_pending(db: Database, table: str = OUTBOX_TABLE) -> datetime | str | None:
    """Creation time of the oldest unpublished event, None when drained, "n/a" if unknown."""
    found = _columns(db, table)
    if found is None:
        return "n/a"
    created, published = found
    row = db.fetchone(
        f"SELECT min({quote(created)}) FROM {quote(table)} WHERE {quote(published)} IS NULL"
    )
    db.end_read()
    return row[0] if row else None


def outbox_lag_seconds(db: Database, table: str = OUTBOX_TABLE) -> float | None:
    """Seconds the oldest unpublished event has waited (0 when drained); None if unknown."""
    found = _columns(db, table)
    if found is None:
        return None
    created, published = found
    # SQLite's CURRENT_TIMESTAMP has whole seconds; 'now' keeps the milliseconds.
    now = "now()" if db.is_pg else "'now'"
    if db.is_pg:
        sql = (
            f"SELECT coalesce(extract(epoch FROM {now} - min({quote(created)})), 0)"
            f" FROM {quote(table)} WHERE {quote(published)} IS NULL"
        )
    else:
        sql = (
            f"SELECT coalesce((julianday({now}) - julianday(min({quote(created)}))) * 86400, 0)"
            f" FROM {quote(table)} WHERE {quote(published)} IS NULL"
        )
    row = db.fetchone(sql)
    db.end_read()
    return float(row[0]) if row else 0.0
