"""The service's own tombstone table gives way to the consumer's tombstones.

The consumer records every applied ``*.deleted`` in ``strangler_consumer_aggregateversion``
before a handler runs, so a second table saying the same is dropped. The plan file and
``strangler sync`` read tombstones as ``votes_tombstone (entity, aggregate_id, seq)``; that name
stays, as a view of the consumer's table.
"""

from django.db import migrations

CREATE_VIEW = """
CREATE VIEW votes_tombstone (entity, aggregate_id, seq) AS
SELECT aggregate_type, CAST(aggregate_id AS BIGINT), seq
FROM strangler_consumer_aggregateversion
WHERE deleted AND aggregate_type IN ('vote', 'choice', 'question')
"""


class Migration(migrations.Migration):
    dependencies = [
        ("votes", "0001_initial"),
        ("strangler_consumer", "0001_initial"),
    ]

    operations = [
        migrations.DeleteModel(name="Tombstone"),
        migrations.RunSQL(CREATE_VIEW, "DROP VIEW votes_tombstone"),
    ]
