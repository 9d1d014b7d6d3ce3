"""Raise each seq counter to the seq its consumer applied (the seq hand-off).

Until now ``emit`` looked the applied version up on every call; the consumer now raises the
counter as it applies. This copies what was applied before, where the consumer's table
exists (a database without ``strangler.consumer`` has nothing to copy).
"""

from django.db import migrations

VERSIONS = "strangler_consumer_aggregateversion"
COUNTERS = "strangler_dualwrite_aggregatesequence"


def raise_counters(apps, schema_editor):
    connection = schema_editor.connection
    if VERSIONS not in connection.introspection.table_names():
        return
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {COUNTERS} (aggregate_type, aggregate_id, seq)"  # noqa: S608
            f" SELECT aggregate_type, aggregate_id, seq FROM {VERSIONS} WHERE seq > 0"
            " ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE"
            f" SET seq = {greatest}({COUNTERS}.seq, excluded.seq)"
        )


class Migration(migrations.Migration):
    dependencies = [("strangler_dualwrite", "0001_initial")]

    operations = [migrations.RunPython(raise_counters, migrations.RunPython.noop)]
