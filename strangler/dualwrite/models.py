"""The outbox, the per-aggregate sequence counters and the per-entity modes."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Mode(models.TextChoices):
    OFF = "off", "off: nothing is published"
    FORWARD = "forward", "forward: this database owns the entity and publishes changes"
    REVERSE = "reverse", "reverse: only the reverse consumer may write the entity here"


class EntityMode(models.Model):
    """How this database treats one entity; read at run time through ``modes.get_mode``."""

    entity = models.CharField(max_length=64, primary_key=True)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.entity}: {self.mode}"


class AggregateSequence(models.Model):
    """The last ``seq`` handed out for one aggregate; bumped with an upsert by ``emit``."""

    aggregate_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64)
    seq = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id"],
                name="strangler_dualwrite_seq_aggregate_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"{self.aggregate_type}:{self.aggregate_id}@{self.seq}"


class OutboxEvent(models.Model):
    """One event written in the producer's transaction, waiting for the relay.

    ``envelope`` is the complete JSON message; the other columns are copies for claiming,
    ordering and monitoring. A row is sent once ``sent_at`` is set; failures push
    ``next_attempt_at`` back so one bad row cannot clog every batch.
    """

    event_id = models.UUIDField(unique=True)
    type = models.CharField(max_length=64)
    aggregate_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    envelope = models.JSONField()
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"],
                condition=Q(sent_at__isnull=True),
                name="strangler_outbox_unsent_idx",
            ),
            models.Index(
                fields=["aggregate_type", "aggregate_id", "seq"],
                condition=Q(sent_at__isnull=True),
                name="strangler_outbox_agg_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.aggregate_type}:{self.aggregate_id}@{self.seq}"
