"""What each user's shadowed dry runs must wait for: the events of their earlier writes.

A primary answering a write with the router's token reports the events its transaction
committed (``X-Strangler-Events``). The book keeps them per shadow backend and principal
(the canary key: the JWT ``sub`` by default) until the shadow backend reports them applied
or ``ttl`` seconds passed, for at most ``principals`` principals (least recently written
forgotten first). A later dry run of the same principal carries them as its fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from strangler.events.refs import MAX_REFS, EventRef

Key = tuple[str, str]  # (shadow backend, principal)
PENDING_WAIT_SECONDS = (
    2.0  # how long a dry run waits for its principal's writes in flight
)


class Write:
    """A fenced write in flight on ``route``: ``done`` once its answer's events (``refs``)
    are in."""

    __slots__ = ("done", "refs", "route")

    def __init__(self, route: str) -> None:
        self.route = route
        self.done = asyncio.Event()
        self.refs: tuple[EventRef, ...] = ()


async def completed(
    fence: tuple[EventRef, ...],
    pending: tuple[Write, ...],
    wait: float = PENDING_WAIT_SECONDS,
) -> tuple[EventRef, ...]:
    """``fence`` plus the events of the writes that were still in flight when it was
    taken, once they are answered (for ``wait`` seconds at most: then those answered)."""
    if not pending:
        return fence
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(w.done.wait() for w in pending)), wait)
    return merged(fence, *(write.refs for write in pending))


def merged(*fences: Iterable[EventRef]) -> tuple[EventRef, ...]:
    """The highest seq per aggregate of all ``fences``, in order of first mention."""
    latest: dict[tuple[str, str], EventRef] = {}
    for fence in fences:
        for ref in fence:
            known = latest.get(ref.aggregate)
            if known is None or known.seq < ref.seq:
                latest[ref.aggregate] = ref
    return tuple(latest.values())


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
        self._open: dict[Key, set[Write]] = {}

    def begin(self, backend: str, principal: str, route: str) -> Write:
        """A write of ``principal`` on ``route`` goes out; ``end`` it when its answer is
        in."""
        write = Write(route)
        self._open.setdefault((backend, principal), set()).add(write)
        return write

    def end(
        self,
        backend: str,
        principal: str,
        write: Write,
        refs: Iterable[EventRef] = (),
    ) -> None:
        """The write's answer is in, with ``refs`` (already ``add``-ed to the book)."""
        write.refs = tuple(refs)
        write.done.set()
        key = (backend, principal)
        writes = self._open.get(key)
        if writes is not None:
            writes.discard(write)
            if not writes:
                del self._open[key]

    def open_writes(
        self, backend: str, principal: str, but: Write
    ) -> tuple[Write, ...]:
        """The principal's other writes on the same route still in flight.

        Two writes of one user on one route contend for the same rows (two casts on one
        question: the second waits on the first's unique key), so one still in flight when
        the other is answered most likely committed before it decided. A write on another
        route (a retraction racing a cast) may as well have committed after: it is left
        out, as before, rather than guessed in."""
        return tuple(
            w
            for w in self._open.get((backend, principal), ())
            if w is not but and w.route == but.route
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
