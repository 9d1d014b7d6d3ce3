"""What each user's shadowed dry runs must wait for: the events of their earlier writes.

A primary answering a write with the router's token reports the events its transaction
committed (``X-Strangler-Events``). The book keeps them per shadow backend and principal
(the canary key: the JWT ``sub`` by default) until the shadow backend reports them applied
or ``ttl`` seconds passed, for at most ``principals`` principals (least recently written
forgotten first). A later dry run of the same principal carries them as its fence.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from strangler.events.refs import MAX_REFS, EventRef

Key = tuple[str, str]  # (shadow backend, principal)


class FenceBook:
    def __init__(
        self,
        *,
        principals: int = 10_000,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.principals = principals
        self.ttl = ttl
        self.clock = clock
        # per key: aggregate → (highest seq reported, when it expires)
        self._book: OrderedDict[Key, dict[tuple[str, str], tuple[int, float]]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._book)

    def fence(self, backend: str, principal: str) -> tuple[EventRef, ...]:
        """The principal's events not known to be applied by ``backend`` yet."""
        key = (backend, principal)
        entry = self._book.get(key)
        if entry is None:
            return ()
        now = self.clock()
        for aggregate in [a for a, (_, until) in entry.items() if until <= now]:
            del entry[aggregate]
        if not entry:
            del self._book[key]
            return ()
        return tuple(EventRef(t, i, seq) for (t, i), (seq, _) in entry.items())

    def add(self, backend: str, principal: str, refs: Iterable[EventRef]) -> None:
        refs = list(refs)
        if not refs:
            return
        key = (backend, principal)
        entry = self._book.get(key)
        if entry is None:
            entry = self._book[key] = {}
        self._book.move_to_end(key)
        until = self.clock() + self.ttl
        for ref in refs:
            seq, _ = entry.get(ref.aggregate, (0, 0.0))
            entry[ref.aggregate] = (max(seq, ref.seq), until)
        while len(entry) > MAX_REFS:
            del entry[min(entry, key=lambda a: entry[a][1])]
        while len(self._book) > self.principals:
            self._book.popitem(last=False)

    def forget(self, backend: str, principal: str, refs: Iterable[EventRef]) -> None:
        """``backend`` has applied ``refs``: they (and older events) fence nothing more."""
        key = (backend, principal)
        entry = self._book.get(key)
        if entry is None:
            return
        for ref in refs:
            found = entry.get(ref.aggregate)
            if found is not None and found[0] <= ref.seq:
                del entry[ref.aggregate]
        if not entry:
            del self._book[key]
