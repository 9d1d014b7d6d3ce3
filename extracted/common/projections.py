"""Applying another service's events to local rows, idempotently and stale-safely.

Every projected row carries the ``seq`` of the event that last wrote it, and an update
applies only ``WHERE seq < incoming``; deletes leave a tombstone so that a late, stale
create cannot bring a deleted row back. Ids are never reused by the producer, so a
tombstone for a parent (a choice, a question) also refuses late creates of its children.

Event ``data`` is the aggregate's state in the API's shape; a malformed field raises
``InvalidEvent`` naming it, so the consumer dead-letters the message instead of guessing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models

from strangler.events import InvalidEvent


class Tombstone(models.Model):
    """A deleted aggregate and the ``seq`` of the event that deleted it."""

    entity = models.CharField(max_length=32)
    aggregate_id = models.BigIntegerField()
    seq = models.BigIntegerField()

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["entity", "aggregate_id"],
                name="%(app_label)s_tombstone_entity_aggregate_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.aggregate_id} deleted at seq {self.seq}"


def bury(tombstones: type[Tombstone], entity: str, aggregate_id: int, seq: int) -> None:
    """Record that ``entity`` ``aggregate_id`` was deleted at ``seq`` (keeps the highest)."""
    tombstones.objects.bulk_create(
        [tombstones(entity=entity, aggregate_id=aggregate_id, seq=seq)],
        ignore_conflicts=True,
    )
    tombstones.objects.filter(
        entity=entity, aggregate_id=aggregate_id, seq__lt=seq
    ).update(seq=seq)


def is_buried(
    tombstones: type[Tombstone],
    entity: str,
    aggregate_id: int,
    *,
    seq: int | None = None,
) -> bool:
    """Whether the aggregate was deleted (at ``seq`` or later, when ``seq`` is given)."""
    found = tombstones.objects.filter(entity=entity, aggregate_id=aggregate_id)
    if seq is not None:
        found = found.filter(seq__gte=seq)
    return found.exists()


def upsert_newer(
    model: type[models.Model], pk: int, seq: int, values: dict[str, Any]
) -> None:
    """Insert row ``pk`` with ``values`` at ``seq``, or update it if its ``seq`` is older."""
    model.objects.bulk_create([model(pk=pk, seq=seq, **values)], ignore_conflicts=True)
    model.objects.filter(pk=pk, seq__lt=seq).update(seq=seq, **values)


def int_field(data: dict[str, Any], name: str) -> int:
    """``data[name]`` as an id; the API's name (``choice``) or the model's (``choice_id``)."""
    value = data.get(name, data.get(f"{name}_id"))
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"data.{name}: must be an integer id, got {value!r}")
    return value


def text_field(data: dict[str, Any], name: str, *, max_length: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidEvent(
            f"data.{name}: must be a string of at most {max_length} characters"
        )
    return value


def timestamp_field(data: dict[str, Any], name: str) -> datetime:
    value = data.get(name)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidEvent(
            f"data.{name}: must be an ISO 8601 timestamp with a zone, got {value!r}"
        )
    return parsed
