"""Router tests against scripted raw-socket backends: each test decides exactly what the
backend writes and when, and the real router (``Router`` and its HTTP server) runs on its
own loop in a thread, on a real socket, with ``fast`` recorded per request."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from router.app import Router
from router.server import HttpConnection, Server
from strangler.routing.store import RouteStore
from tests.integration.router.rawserver import ThreadedServer, read_request

Handler = Callable[["Conn"], None]


class Conn:
    """One backend connection as the script sees it."""

    def __init__(self, sock: socket.socket, backend: Scripted, number: int) -> None:
        self.sock = sock
        self.backend = backend
        self.number = number
        self.buffer = b""

    def request(self) -> bytes | None:
        """The next whole request (head and content-length body), None at EOF."""
        got = read_request(self.sock, self.buffer)
        if got is None:
            return None
        head, body, self.buffer = got
        request = head + b"\r\n\r\n" + body
        self.backend.requests.append(request)
        return request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


def answer(body: bytes = b"ok", close: bool = False, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s%s\r\n%s" % (
        len(body),
        b"Connection: close\r\n" if close else b"",
        extra,
        body,
    )


class Scripted(ThreadedServer):
    """A backend on 127.0.0.1 running ``handler`` for every connection."""

    def __init__(self, handler: Handler) -> None:
        super().__init__(backlog=64)
        self.handler = handler
        self.requests: list[bytes] = []
        self.start()

    def handle(self, sock: socket.socket, number: int) -> None:
        self.handler(Conn(sock, self, number))


def keep_alive(conn: Conn) -> None:
    while conn.request() is not None:
        conn.send(answer(b"ok %d" % conn.number))


def plain_config(url: str, read_timeout: float = 2.0) -> str:
    """One backend ``b`` and one plain route ``plain`` for every path."""
    return (
        "backends:\n"
        f"  b: {{url: '{url}', read_timeout: {read_timeout}}}\n"
        "routes:\n"
        "  - {name: plain, path: /**, to: b}\n"
    )


class RouterThread:
    """``Router`` and its server on a loop in a thread; ``taken`` records ``fast``."""

    def __init__(
        self, root: Path, config: str, engine: bool = False, **options
    ) -> None:
        """``engine``: the C data path accepts the connections (router.engine), as
        ``python -m router`` runs it, rather than the Python server alone."""
        self.engine = engine
        self.datapath = None
        self.store = RouteStore(root / "store")
        self.store.commit(config, action="test", why="scripted backends")
        options.setdefault("poll_interval", 60)
        self.router = Router(self.store, access_log_enabled=False, **options)
        self.taken: list[bool] = []
        fast = self.router.fast

        def recorded(req, conn) -> bool:
            taken = fast(req, conn)
            self.taken.append(taken)
            return taken

        self.router.fast = recorded
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def took(self, count: int) -> list[bool]:
        """What ``fast`` said for the first ``count`` requests. It records in the router's
        thread after it returns, and may already have answered the client by then."""
        deadline = time.monotonic() + 5
        while len(self.taken) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.taken

    async def _start(self) -> None:
        await self.router.startup()
        server = Server(self.router)
        if self.engine:
            from router.engine import DataPath

            self.sock.listen(128)
            self.datapath = self.router.datapath = DataPath(server, self.sock)
            self.server = None
            return
        self.server = await self.loop.create_server(
            lambda: HttpConnection(server), sock=self.sock
        )

    def close(self) -> None:
        async def stop() -> None:
            if self.server is not None:
                self.server.close()
            if self.datapath is not None:
                self.datapath.close()
            await self.router.shutdown()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
