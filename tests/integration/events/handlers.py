"""Test handlers: record every applied event in ``h_events_applied`` (created by the test), and
fail on demand so poison handling can be observed."""

from __future__ import annotations

from django.db import connection

from strangler.consumer.handlers import Handlers
from strangler.events.envelope import Event

TABLE = "h_events_applied"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY, event_id uuid NOT NULL, type text NOT NULL,
    aggregate_id text NOT NULL, seq bigint NOT NULL
)
"""

handlers = Handlers()


@handlers.on("vote.created", "vote.deleted", "choice.created", "choice.updated")
def record(event: Event) -> None:
    if event.data.get("fail"):
        raise ValueError(f"refusing {event.type} {event.aggregate_id}: asked to fail")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO h_events_applied (event_id, type, aggregate_id, seq) "
            "VALUES (%s, %s, %s, %s)",
            [str(event.id), event.type, event.aggregate_id, event.seq],
        )


def applied_rows() -> list[tuple[str, str, str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_id::text, type, aggregate_id, seq FROM h_events_applied ORDER BY id"
        )
        return cursor.fetchall()
