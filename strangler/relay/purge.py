"""Outbox housekeeping: delete rows sent long ago, a batch per transaction, so that the
outbox stays small without one long delete holding locks or bloating a transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections

from strangler.dualwrite.models import OutboxEvent

_DELETE_BATCH = """
DELETE FROM {table} WHERE id IN (
    SELECT id FROM {table} WHERE sent_at < %s ORDER BY id LIMIT %s
)
"""


def purge_sent(
    *,
    older_than: float,
    batch_size: int = 5000,
    dry_run: bool = False,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Delete outbox rows sent more than ``older_than`` seconds ago; return how many (with
    ``dry_run``, how many would be). Unsent rows are never touched."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    if dry_run:
        return OutboxEvent.objects.using(using).filter(sent_at__lt=cutoff).count()
    connection = connections[using]
    sql = _DELETE_BATCH.format(
        table=connection.ops.quote_name(OutboxEvent._meta.db_table)
    )
    params = [connection.ops.adapt_datetimefield_value(cutoff), batch_size]
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            count = cursor.rowcount
        deleted += count
        if count < batch_size:
            return deleted
