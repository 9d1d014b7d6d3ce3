"""The inbox (which events were applied), per-aggregate versions with tombstones, and the
dead letters of the HTTP transport."""

from __future__ import annotations

from django.db import models


class InboxEvent(models.Model):
    """An event id this database has consumed (applied, or dropped as stale); inserted in the
    same transaction as the apply, so a redelivery is recognised and acked without effect."""

    event_id = models.UUIDField(primary_key=True)
    type = models.CharField(max_length=64)
    source = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    received_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.type} {self.aggregate_id}@{self.seq}"


class AggregateVersion(models.Model):
    """The highest ``seq`` applied per aggregate, and its tombstone.

    ``deleted`` is set by a ``*.deleted`` event and never cleared: no later event, stale or
    not, and no backfill may bring that aggregate back (``tombstones.is_deleted``).
    """

    aggregate_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    deleted = models.BooleanField(default=False)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id"],
                name="strangler_consumer_version_aggregate_uniq",
            )
        ]
        indexes = [
            models.Index(
                fields=["aggregate_type", "aggregate_id"],
                condition=models.Q(deleted=True),
                name="strangler_tombstone_idx",
            )
        ]

    def __str__(self) -> str:
        suffix = " (deleted)" if self.deleted else ""
        return f"{self.aggregate_type}:{self.aggregate_id}@{self.seq}{suffix}"


class DeadLetter(models.Model):
    """A message the HTTP endpoint could not apply, kept with the reason (RabbitMQ consumers
    use their dead-letter queue instead)."""

    event_id = models.CharField(max_length=64, blank=True, default="")
    body = models.TextField()
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"dead letter {self.pk}: {self.reason[:60]}"
