"""The raw upstream sockets' epoll set (``_Poller`` in router/upstream.py): one
``epoll_ctl`` per socket, readiness dispatched per link, and no stale event for a socket
number that was closed and reused while one batch of events is handled."""

from __future__ import annotations

import asyncio
import socket

import uvloop

from router.upstream import _IN, _OUT, _poller


class FakeLink:
    def __init__(self, name: str, sock: socket.socket, seen: list[str]) -> None:
        self.name, self.sock, self.seen = name, sock, seen
        self.fd = sock.fileno()
        self.reading, self.pending, self.turn = True, b"", 0
        self.on_read = None

    def _readable(self) -> None:
        self.seen.append(f"{self.name} read")
        if self.on_read is not None:
            self.on_read()

    def _writable(self) -> None:
        self.seen.append(f"{self.name} write")
        self.pending = b""


def _run(scenario) -> None:
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


def test_readiness_goes_to_the_link_and_follows_what_it_waits_for():
    async def scenario() -> None:
        poller = _poller(asyncio.get_running_loop())
        assert _poller(asyncio.get_running_loop()) is poller  # one per loop
        seen: list[str] = []
        ours, peer = socket.socketpair()
        link = FakeLink("a", ours, seen)
        poller.watch(link, _IN)
        await _settle()
        assert seen == []  # nothing to read yet
        peer.send(b"x")
        await _settle()
        assert seen and set(seen) == {"a read"}  # level-triggered until read
        ours.recv(10)
        seen.clear()
        link.pending = b"more"
        poller.change(link, _IN | _OUT)
        await _settle()
        assert seen == ["a write"]
        poller.change(link, 0)  # paused: no reading, nothing pending
        peer.send(b"y")
        seen.clear()
        await _settle()
        assert seen == []
        poller.forget(link)
        ours.close()
        peer.close()
        assert link.fd not in poller.links

    _run(scenario)


def test_a_socket_number_reused_within_one_batch_gets_no_stale_event():
    """``x``'s handler closes ``a`` and opens ``b``, which gets ``a``'s number; ``a``'s
    event, already in the same batch, must not reach ``b``."""

    async def scenario() -> None:
        poller = _poller(asyncio.get_running_loop())
        turns: dict[str, list[int]] = {"x": [], "a": [], "b": []}
        x_ours, x_peer = socket.socketpair()
        a_ours, a_peer = socket.socketpair()
        x, a = FakeLink("x", x_ours, []), FakeLink("a", a_ours, [])
        for link in (x, a):
            link.on_read = lambda name=link.name: turns[name].append(poller.turn)
        poller.watch(x, _IN)
        poller.watch(a, _IN)
        opened: list[socket.socket] = []

        def reopen() -> None:
            turns["x"].append(poller.turn)
            x.on_read = None
            x_ours.recv(10)
            number = a.fd
            poller.forget(a)
            a_ours.close()
            b_ours, b_peer = socket.socketpair()
            opened.extend((b_ours, b_peer))
            b = FakeLink("b", b_ours, [])
            b.on_read = lambda: (turns["b"].append(poller.turn), b_ours.recv(10))
            poller.watch(b, _IN)
            assert b.fd == number  # the lowest free number: a's
            b_peer.send(b"for b")

        x.on_read = reopen
        x_peer.send(b"1")  # ready first: first in the batch
        a_peer.send(b"2")
        await asyncio.sleep(0.05)
        assert turns["a"] == []  # closed before its event was handled
        assert len(turns["x"]) == 1 and turns["b"]
        # b reads its own bytes, from the batch after the one that made it.
        assert turns["b"][0] > turns["x"][0]
        for sock in (x_ours, x_peer, a_peer, *opened):
            sock.close()

    _run(scenario)


def test_a_paused_link_whose_peer_hung_up_does_not_wake_the_loop():
    """epoll reports a hang-up whatever the mask: a link that waits for nothing is out of
    the set until it waits again, and then hears the hang-up."""

    async def scenario() -> None:
        poller = _poller(asyncio.get_running_loop())
        seen: list[str] = []
        ours, peer = socket.socketpair()
        link = FakeLink("a", ours, seen)
        poller.watch(link, _IN)
        link.reading = False
        poller.change(link, 0)  # paused, nothing pending
        peer.close()  # the backend hangs up
        before = poller.turn
        await _settle()
        assert poller.turn - before <= 1 and seen == []
        link.reading = True
        poller.change(link, _IN)
        await _settle()
        assert seen and set(seen) == {"a read"}
        poller.forget(link)
        ours.close()

    _run(scenario)
