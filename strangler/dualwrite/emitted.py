"""The events a request's transactions committed, collected for ``X-Strangler-Events``.

``collecting()`` opens a collection for the current request (a context variable, so threads
and tasks never share one); ``emit`` calls ``record`` for each event it writes, and the event
joins the collection only when its transaction commits (``transaction.on_commit``): an event
rolled back with its change was never sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction

from strangler.events.refs import EventRef

_collected: ContextVar[list[EventRef] | None] = ContextVar(
    "strangler_emitted_events", default=None
)


@contextmanager
def collecting() -> Iterator[list[EventRef]]:
    """A fresh list that receives the refs of the events committed inside the block."""
    refs: list[EventRef] = []
    token = _collected.set(refs)
    try:
        yield refs
    finally:
        _collected.reset(token)


def record(aggregate_type: str, aggregate_id: str, seq: int, using: str) -> None:
    """Called by ``emit`` inside the event's transaction; a no-op outside ``collecting``."""
    refs = _collected.get()
    if refs is not None:
        ref = EventRef(aggregate_type, aggregate_id, seq)
        transaction.on_commit(lambda: refs.append(ref), using=using)
