"""Causal fences for dry runs: has this database applied given events yet?

The consumer keeps the highest applied ``seq`` per aggregate, and a tombstone once it is
deleted (``AggregateVersion``). An event is applied when its aggregate's version reached its
``seq``, or the aggregate is deleted (nothing after a deletion is ever applied, and nothing
needs to be). ``wait_until_applied`` polls that, bounded, before a shadowed write runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q

from strangler.consumer.models import AggregateVersion
from strangler.events.refs import EventRef

POLL_SECONDS = 0.02


def applied(refs: Iterable[EventRef], using: str = DEFAULT_DB_ALIAS) -> set[EventRef]:
    """The refs among ``refs`` whose events this database has applied; one query."""
    refs = set(refs)
    if not refs:
        return set()
    wanted = Q()
    for aggregate_type, aggregate_id in {ref.aggregate for ref in refs}:
        wanted |= Q(aggregate_type=aggregate_type, aggregate_id=aggregate_id)
    versions = {
        (kind, ident): (seq, deleted)
        for kind, ident, seq, deleted in AggregateVersion.objects.using(using)
        .filter(wanted)
        .values_list("aggregate_type", "aggregate_id", "seq", "deleted")
    }
    done = set()
    for ref in refs:
        seq, deleted = versions.get(ref.aggregate, (0, False))
        if deleted or seq >= ref.seq:
            done.add(ref)
    return done


def wait_until_applied(
    refs: Iterable[EventRef],
    *,
    timeout: float,
    using: str = DEFAULT_DB_ALIAS,
    poll: float = POLL_SECONDS,
) -> set[EventRef]:
    """Poll until every ref is applied or ``timeout`` seconds passed; the refs still
    missing (empty when the fence holds). Each poll is its own autocommit query, so it
    sees what the consumer committed since the last one."""
    missing = set(refs)
    deadline = time.monotonic() + timeout
    while missing:
        missing -= applied(missing, using)
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
    return missing
