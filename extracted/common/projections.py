"""Applying another producer's events to local rows, for the services' consumer handlers.

The consumer (``strangler.consumer``) lets an event through to a handler only once (inbox),
only when it is newer than the last applied for its aggregate, and never after that
aggregate's ``*.deleted`` (its tombstone, ``strangler_consumer_aggregateversion``). What it
cannot know is the parent rule: ids are never reused upstream, so a late event for a child
(a vote, a choice) whose choice or question was deleted must not bring the child back; the
handlers ask :func:`any_deleted` (:func:`deleted_among` for a run of events). Projected rows
keep the ``seq`` of the event that last wrote them, which tells the backfill
(``strangler sync``) not to overwrite them.

Event ``data`` is the aggregate's state in the API's shape; a malformed field raises
``InvalidEvent`` naming it, so the consumer dead-letters the message instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import models
from django.db.models import Q

from strangler.consumer.handlers import BatchHandler, Handler
from strangler.consumer.models import AggregateVersion
from strangler.dualwrite.outbox import default_source
from strangler.events import Event

Apply = Callable[[dict[str, Any], int], None]
ApplyBatch = Callable[[list[tuple[dict[str, Any], int]]], None]


def from_elsewhere(apply: Apply) -> Handler:
    """A consumer handler calling ``apply(data, seq)`` for other producers' events.

    The service's own relay publishes to the exchange its queue listens on; applying its own
    events again could briefly bring back a row it has deleted since, so they are skipped.
    """

    def handle(event: Event) -> None:
        if event.source != default_source():
            apply(event.data, event.seq)

    handle.__name__ = handle.__qualname__ = apply.__name__
    handle.__doc__ = apply.__doc__
    return handle


def from_elsewhere_batch(apply: ApplyBatch) -> BatchHandler:
    """:func:`from_elsewhere` for a batch handler: ``apply`` gets the ``(data, seq)`` of the
    run's events from other producers, in order, and is not called when there are none."""

    def handle(events: list[Event]) -> None:
        source = default_source()
        items = [(event.data, event.seq) for event in events if event.source != source]
        if items:
            apply(items)

    handle.__name__ = handle.__qualname__ = apply.__name__
    handle.__doc__ = apply.__doc__
    return handle


def any_deleted(**parents: int) -> bool:
    """Whether any of ``choice=3, question=1`` was deleted by an event (one query)."""
    condition = Q()
    for aggregate_type, aggregate_id in parents.items():
        condition |= Q(aggregate_type=aggregate_type, aggregate_id=str(aggregate_id))
    return AggregateVersion.objects.filter(condition, deleted=True).exists()


def deleted_among(**parents: Iterable[int]) -> set[tuple[str, int]]:
    """Which of ``choice=[3, 4], question=[1]`` events deleted, as ``("choice", 3)``
    pairs (one query)."""
    condition = Q()
    for aggregate_type, ids in parents.items():
        keys = [str(aggregate_id) for aggregate_id in ids]
        condition |= Q(aggregate_type=aggregate_type, aggregate_id__in=keys)
    rows = AggregateVersion.objects.filter(condition, deleted=True).values_list(
        "aggregate_type", "aggregate_id"
    )
    return {
        (aggregate_type, int(aggregate_id)) for aggregate_type, aggregate_id in rows
    }


def upsert_newer(
    model: type[models.Model], pk: int, seq: int, values: dict[str, Any]
) -> None:
    """Insert row ``pk`` with ``values`` at ``seq``, or update it if its ``seq`` is older."""
    model.objects.bulk_create([model(pk=pk, seq=seq, **values)], ignore_conflicts=True)
    model.objects.filter(pk=pk, seq__lt=seq).update(seq=seq, **values)
