"""The router's book of each principal's unapplied events (the fences of dry runs)."""

from __future__ import annotations

import asyncio

from router.fences import FenceBook, completed
from strangler.events.refs import MAX_REFS, EventRef


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ref(aggregate_id: str, seq: int) -> EventRef:
    return EventRef("vote", aggregate_id, seq)


def test_a_principals_events_fence_their_later_dry_runs_on_that_backend_only():
    book = FenceBook()
    book.add("vote", "7", [ref("1", 1), ref("2", 3)])
    assert set(book.fence("vote", "7")) == {ref("1", 1), ref("2", 3)}
    assert book.fence("vote", "8") == ()
    assert book.fence("choice", "7") == ()


def test_a_later_event_of_the_same_aggregate_replaces_the_earlier():
    book = FenceBook()
    book.add("vote", "7", [ref("1", 1)])
    book.add("vote", "7", [ref("1", 2)])
    book.add("vote", "7", [ref("1", 1)])  # reported late: the newer seq stays
    assert book.fence("vote", "7") == (ref("1", 2),)


def test_events_reported_applied_are_forgotten_but_newer_ones_stay():
    book = FenceBook()
    book.add("vote", "7", [ref("1", 2), ref("2", 1)])
    book.forget("vote", "7", [ref("1", 1), ref("2", 1)])
    assert book.fence("vote", "7") == (ref("1", 2),)
    book.forget("vote", "7", [ref("1", 2)])
    assert book.fence("vote", "7") == () and len(book) == 0


def test_entries_expire_after_the_ttl():
    clock = Clock()
    book = FenceBook(ttl=30, clock=clock)
    book.add("vote", "7", [ref("1", 1)])
    clock.now += 20
    book.add("vote", "7", [ref("2", 1)])
    clock.now += 15
    assert book.fence("vote", "7") == (ref("2", 1),)
    clock.now += 20
    assert book.fence("vote", "7") == () and len(book) == 0


def test_the_least_recently_writing_principal_is_dropped_past_the_bound():
    book = FenceBook(principals=2)
    book.add("vote", "a", [ref("1", 1)])
    book.add("vote", "b", [ref("2", 1)])
    book.add("vote", "a", [ref("3", 1)])
    book.add("vote", "c", [ref("4", 1)])
    assert book.fence("vote", "b") == ()
    assert len(book.fence("vote", "a")) == 2 and book.fence("vote", "c")


def test_one_principal_keeps_at_most_max_refs_the_newest():
    clock = Clock()
    book = FenceBook(clock=clock)
    for n in range(MAX_REFS + 5):
        clock.now += 0.01
        book.add("vote", "7", [ref(str(n), 1)])
    kept = book.fence("vote", "7")
    assert len(kept) == MAX_REFS
    assert {r.aggregate_id for r in kept} == {str(n) for n in range(5, MAX_REFS + 5)}


def test_a_principals_other_writes_in_flight_on_the_route_are_pending_until_answered():
    book = FenceBook()
    first, second = book.begin("vote", "7", "cast"), book.begin("vote", "7", "cast")
    retraction = book.begin("vote", "7", "retract")
    other_user = book.begin("vote", "8", "cast")
    # A retraction racing a cast may have committed after the cast decided: not pending.
    assert book.open_writes("vote", "7", but=second) == (first,)
    assert book.open_writes("vote", "7", but=retraction) == ()
    book.end("vote", "7", first, [ref("1", 2)])
    assert first.done.is_set() and first.refs == (ref("1", 2),)
    assert book.open_writes("vote", "7", but=second) == ()
    assert book.open_writes("vote", "8", but=second) == (other_user,)
    for write, principal in ((second, "7"), (retraction, "7"), (other_user, "8")):
        book.end("vote", principal, write)
    assert book._open == {}


def test_a_dry_run_fence_takes_the_events_of_writes_answered_after_it_was_taken():
    async def scenario() -> tuple:
        book = FenceBook()
        concurrent, late = (
            book.begin("vote", "7", "cast"),
            book.begin("vote", "7", "cast"),
        )
        fence = (ref("1", 1), ref("2", 5))
        asyncio.get_running_loop().call_later(
            0.05, book.end, "vote", "7", concurrent, [ref("1", 3), ref("2", 4)]
        )
        # ``late`` is never answered: the wait ends, with what was answered by then.
        started = asyncio.get_running_loop().time()
        merged = await completed(fence, (concurrent, late), wait=0.3)
        return merged, asyncio.get_running_loop().time() - started

    merged, waited = asyncio.run(scenario())
    assert set(merged) == {ref("1", 3), ref("2", 5)}  # the newest seq per aggregate
    assert 0.3 <= waited < 1.0


def test_with_nothing_pending_the_fence_is_as_taken():
    fence = (ref("1", 1),)
    assert asyncio.run(completed(fence, ())) is fence
