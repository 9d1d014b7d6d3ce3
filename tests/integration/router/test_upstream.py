"""The upstream pool against real sockets: a backend that closes every connection is
detected and then reached on raw sockets whose request is written in the connect's own
loop turn; refused and unanswered connects, large bodies both ways, the switch back
to kept-alive connections when the backend starts keeping them, and backends on a Unix
socket."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

import pytest

from router import upstream
from router.upstream import Link, Pool, UpstreamError
from strangler.routing.schema import Backend
from tests.integration.router.rawserver import ThreadedServer, read_request


class Backend1(ThreadedServer):
    """A threaded HTTP/1.1 backend on a real socket: answers each request with its body's
    length, closing the connection after every answer while ``close`` is set."""

    def __init__(
        self,
        close: bool = True,
        body: bytes = b"ok",
        backlog: int = 16,
        unix: str | None = None,
    ):
        super().__init__(backlog, unix)
        self.heads: list[bytes] = []
        self.close = close
        self.body = body
        self.before_read: Callable[[socket.socket], None] | None = None

    def __enter__(self) -> Backend1:
        self.start()
        return self

    def handle(self, sock: socket.socket, number: int) -> None:
        self._answer(sock)

    def _answer(self, sock: socket.socket) -> None:
        with sock:
            if self.before_read is not None:
                self.before_read(sock)
            sock.settimeout(5)
            data = b""
            while True:
                got = read_request(sock, data)
                if got is None:
                    return
                head, received, data = got
                self.heads.append(head)
                length = len(received)
                close = self.close
                body = self.body or str(length).encode()
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
                    % (len(body), b"Connection: close\r\n" if close else b"", body)
                )
                if close:
                    return


def _pool(port: int, **extra) -> Pool:
    return Pool(Backend(name="b", url=f"http://127.0.0.1:{port}", **extra))


async def _get(pool: Pool, body: bytes | None = None) -> tuple[int, bytes, object]:
    method = b"POST" if body else b"GET"
    headers = b"content-length: %d\r\n" % len(body) if body else b""
    resp = await pool.exchange(method, b"/x", headers, body)
    data = await resp.read_all()
    transport = resp.transport
    resp.release()
    return resp.status, data, transport


def test_a_backend_that_closes_is_detected_and_then_reached_on_raw_sockets():
    async def scenario(backend: Backend1) -> None:
        pool = _pool(backend.port)
        assert not pool.closes
        status, body, transport = await _get(pool)
        assert (status, body) == (200, b"ok")
        assert not isinstance(transport, Link)
        assert pool.closes
        for _ in range(3):
            status, body, transport = await _get(pool)
            assert (status, body) == (200, b"ok")
            assert isinstance(transport, Link)
        await asyncio.sleep(0.05)
        assert pool.open == 0 and not pool.idle

    with Backend1(close=True) as backend:
        asyncio.run(scenario(backend))
        assert backend.connections == 4


def test_the_request_is_written_in_the_connects_own_loop_turn():
    """The backend has not even accepted the connection when the router's task first
    yields: the whole request must already be waiting in its socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def scenario() -> None:
        pool = _pool(port)
        pool.closes = True
        exchange = asyncio.ensure_future(pool.exchange(b"GET", b"/now", b"", None))
        await asyncio.sleep(0)
        listener.setblocking(False)
        sock, _ = listener.accept()
        with sock:
            sock.setblocking(False)
            data = sock.recv(65536)
            assert data.startswith(b"GET /now HTTP/1.1\r\n")
            assert data.endswith(b"\r\n\r\n")
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nyes"
            )
        resp = await asyncio.wait_for(exchange, 5)
        assert await resp.read_all() == b"yes"
        resp.release()

    with listener:
        asyncio.run(scenario())


def test_a_refused_raw_connect_is_a_connect_error_and_frees_its_slot():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        pool = _pool(port)
        pool.closes = True
        with pytest.raises(UpstreamError) as err:
            await pool.exchange(b"GET", b"/", b"", None)
        assert err.value.kind == "connect"
        await asyncio.sleep(0.01)
        assert pool.open == 0

    asyncio.run(scenario())


def test_an_unanswered_raw_connect_times_out_as_a_connect_error():
    # A listener whose accept queue is full drops new SYNs: the connect never completes.
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):

            async def scenario() -> None:
                pool = _pool(port, connect_timeout=0.2)
                pool.closes = True
                with pytest.raises(UpstreamError) as err:
                    await asyncio.wait_for(pool.exchange(b"GET", b"/", b"", None), 5)
                assert (err.value.kind, str(err.value)) == (
                    "connect",
                    "connect timed out",
                )
                await asyncio.sleep(0.01)
                assert pool.open == 0

            asyncio.run(scenario())


def test_large_bodies_both_ways_on_raw_sockets():
    big = b"r" * (3 << 20)
    upload = b"u" * (4 << 20)

    async def scenario(port: int, port_slow: int) -> None:
        pool = _pool(port)
        pool.closes = True
        resp = await pool.exchange(b"GET", b"/big", b"", None)
        await asyncio.sleep(
            0.2
        )  # the answer piles up: reading pauses at the high water
        assert resp.paused
        assert await resp.read_all() == big
        resp.release()
        # Larger than the socket buffers of a backend that starts reading late: the rest
        # waits for writability, and the connect timeout does not apply to it.
        slow = _pool(port_slow, connect_timeout=0.05)
        slow.closes = True
        status, body, transport = await _get(slow, upload)
        assert isinstance(transport, Link)
        assert (status, body) == (200, b"%d" % len(upload))

    with (
        Backend1(close=True, body=big) as backend,
        Backend1(close=True, body=b"") as slow_backend,
    ):
        slow_backend.before_read = lambda sock: time.sleep(0.2)
        asyncio.run(scenario(backend.port, slow_backend.port))


def test_a_backend_that_starts_keeping_connections_gets_them_reused():
    async def scenario(backend: Backend1) -> None:
        pool = _pool(backend.port)
        await _get(pool)
        assert pool.closes
        backend.close = False
        _, _, first = await _get(pool)
        assert isinstance(first, Link) and not pool.closes
        for _ in range(3):
            _, body, transport = await _get(pool)
            assert body == b"ok" and transport is first

    with Backend1(close=True) as backend:
        asyncio.run(scenario(backend))
        assert backend.connections == 2


@pytest.mark.parametrize("close", [True, False], ids=["closes", "keeps-alive"])
def test_a_backend_on_a_unix_socket(tmp_path, close):
    """Connects go to the socket, the Host header still names the URL; a backend that
    closes is then reached on raw Unix sockets, one that keeps alive is reused."""
    path = str(tmp_path / "b.sock")

    async def scenario(backend: Backend1) -> None:
        pool = Pool(Backend(name="b", url="http://monolith:8000", socket=path))
        kinds = []
        for _ in range(3):
            status, body, transport = await _get(pool, b"abc")
            assert (status, body) == (200, b"3")
            kinds.append(isinstance(transport, Link))
        assert kinds == ([False, True, True] if close else [False, False, False])
        assert pool.closes is close
        await pool.close()

    with Backend1(close=close, body=b"", unix=path) as backend:
        asyncio.run(scenario(backend))
        assert backend.connections == (3 if close else 1)
        assert all(b"\r\nhost: monolith:8000" in h.lower() for h in backend.heads)


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "asyncio"])
def test_a_missing_unix_socket_is_a_connect_error(tmp_path, raw):
    path = str(tmp_path / "absent.sock")

    async def scenario() -> None:
        pool = Pool(Backend(name="b", url="http://monolith:8000", socket=path))
        pool.closes = raw
        with pytest.raises(UpstreamError) as err:
            await pool.exchange(b"GET", b"/", b"", None)
        assert err.value.kind == "connect"
        if raw:
            assert str(err.value) == f"ENOENT on {path}"
        await asyncio.sleep(0.01)
        assert pool.open == 0

    asyncio.run(scenario())


async def _get_all(pool: Pool, n: int) -> None:
    """``n`` requests at once, each answered 200 ok."""
    answers = await asyncio.gather(*(_get(pool) for _ in range(n)))
    assert [answer[:2] for answer in answers] == [(200, b"ok")] * n


def test_a_kept_alive_pool_grows_one_connection_at_a_time_and_reuses_meanwhile(
    monkeypatch,
):
    """gthread workers keep the connections they accept, and a burst of connects can all
    go to one of them. The pool opens its next connection only SLOW_START_SECONDS after
    the last; requests meanwhile take a connection as soon as one is given back."""
    monkeypatch.setattr(upstream, "SLOW_START_SECONDS", 60.0)

    async def scenario(backend: Backend1) -> None:
        pool = _pool(backend.port)
        await _get_all(pool, 5)
        assert pool.open == 1

    with Backend1(close=False) as backend:
        asyncio.run(asyncio.wait_for(scenario(backend), 10))
        assert backend.connections == 1


def test_a_kept_alive_pool_still_grows_to_what_the_load_needs():
    """Three requests the backend holds until all three are in need three connections:
    the pool opens them, a slow start apart."""
    arrived = threading.Barrier(3, timeout=5)

    async def scenario(backend: Backend1) -> None:
        pool = _pool(backend.port)
        await _get_all(pool, 3)
        assert pool.open == 3

    with Backend1(close=False) as backend:
        backend.before_read = lambda sock: arrived.wait()
        asyncio.run(asyncio.wait_for(scenario(backend), 10))
        assert backend.connections == 3


def test_a_backend_that_closes_every_connection_is_not_held_back(monkeypatch):
    """Sync workers need a connect per request: five at once get five connections."""
    monkeypatch.setattr(upstream, "SLOW_START_SECONDS", 60.0)
    arrived = threading.Barrier(5, timeout=5)

    async def scenario(backend: Backend1) -> None:
        pool = _pool(backend.port)
        await _get(pool)  # the answer says it closes
        assert pool.closes
        backend.before_read = lambda sock: arrived.wait()
        await _get_all(pool, 5)

    with Backend1(close=True) as backend:
        asyncio.run(asyncio.wait_for(scenario(backend), 10))
        assert backend.connections == 6
