"""Read the tombstones the consumer keeps, for sync and handlers that must not resurrect a
deleted aggregate. Table ``strangler_consumer_aggregateversion``: ``(aggregate_type,
aggregate_id)`` unique, ``seq`` the last applied, ``deleted`` true forever after a deletion."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from strangler.consumer.models import AggregateVersion


def is_deleted(
    aggregate_type: str, aggregate_id: int | str, using: str = DEFAULT_DB_ALIAS
) -> bool:
    return (
        AggregateVersion.objects.using(using)
        .filter(
            aggregate_type=aggregate_type, aggregate_id=str(aggregate_id), deleted=True
        )
        .exists()
    )


def deleted_ids(aggregate_type: str, using: str = DEFAULT_DB_ALIAS) -> set[str]:
    return set(
        AggregateVersion.objects.using(using)
        .filter(aggregate_type=aggregate_type, deleted=True)
        .values_list("aggregate_id", flat=True)
    )
