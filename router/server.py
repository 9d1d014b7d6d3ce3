"""The router's HTTP/1.1 server: an asyncio Protocol per client connection with the
httptools parser, keep-alive, pipelining in order, streamed bodies with flow control, and
a graceful stop on SIGTERM.

It replaces uvicorn + ASGI on the proxy path: the per-request ASGI messages and dicts cost
more CPU than everything the router itself does (docs/router.md, "Performance").
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import Awaitable
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httptools

if TYPE_CHECKING:
    from router.app import Router

log = logging.getLogger("router")

BUFFER_BELOW = 64 * 1024  # request bodies up to this size are read whole before routing
HIGH_WATER = 256 * 1024
KEEPALIVE_SECONDS = 5.0
STOP_GRACE_SECONDS = 5.0
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024
_STATUS_LINES = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus
}
_BAD_BODY = (
    b'{"error": {"code": "bad_request", "message": "Malformed HTTP/1.1 request."}}'
)
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BAD_BODY), _BAD_BODY)
)


class ClientGone(Exception):
    """The client closed its connection before the exchange ended."""


class BodyTooLarge(Exception):
    pass


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d Unknown\r\n" % status


class Headers:
    """What is worked out from one request's header list: ``hmap`` (repeats joined with
    ", ") and, once the router has built it, ``forward`` (the header lines it sends
    upstream but for the request id and the length). A client sends the same headers on
    each request of a connection more often than not, so the connection keeps the last
    one and a request whose headers are equal shares it. Never changed once shared."""

    __slots__ = ("forward", "headers", "hmap")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self.forward: bytes | None = None
        hmap: dict[bytes, bytes] = {}
        for name, value in headers:
            hmap[name] = hmap[name] + b", " + value if name in hmap else value
        self.hmap = hmap


class Request:
    """One parsed request. ``headers`` keeps order and repeats (names lower-case);
    ``hmap`` joins repeats with ", ". The body is ``body`` when it was small enough to
    read whole, else ``stream``."""

    __slots__ = (
        "body",
        "client",
        "headers",
        "hmap",
        "http11",
        "keep_alive",
        "memo",
        "method",
        "parts",
        "path",
        "query",
        "raw_path",
        "stream",
        "url",
    )

    def __init__(self, client: str) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.client = client
        self.body = b""
        self.stream: BodyStream | None = None
        self.parts: list[bytes] | None = None

    def finish_head(
        self, parser: httptools.HttpRequestParser, memo: Headers | None
    ) -> Headers:
        """Complete the request from the parser; ``memo`` is the connection's last
        ``Headers``, reused when this request's headers are equal. Returns the one used."""
        self.method = parser.get_method().decode("latin-1")
        self.keep_alive = keep_alive = parser.should_keep_alive()
        url = self.url
        if url[:1] != b"/":
            parsed = httptools.parse_url(url)
            url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        raw_path, _, self.query = url.partition(b"?")
        self.raw_path = raw_path
        path = raw_path.decode("latin-1")
        self.path = unquote(path) if "%" in path else path
        if memo is None or memo.headers != self.headers:
            memo = Headers(self.headers)
        self.memo = memo
        hmap = self.hmap = memo.hmap
        # Kept alive without a Connection header is HTTP/1.1 (1.0 needs "keep-alive"
        # said); else ask the parser, whose version string costs a format call.
        self.http11 = (
            keep_alive and b"connection" not in hmap
        ) or parser.get_http_version() == "1.1"
        return memo


class BodyStream:
    """A request body that is still arriving: ``read()`` gives chunks, b"" at the end."""

    def __init__(self, conn: HttpConnection, expect_continue: bool) -> None:
        self.conn = conn
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.done = False
        self.gone = False
        self.waiter: asyncio.Future | None = None
        self.expect_continue = expect_continue
        self.discarded: int | None = None

    def discard(self) -> None:
        """Answered early (413): drop the rest, so closing does not reset the connection
        before the client has read the answer."""
        self.discarded = 0
        self.chunks.clear()
        self.conn.resume_reading()
        self.conn.loop.call_later(LINGER_SECONDS, self.conn.close)

    def feed(self, data: bytes) -> None:
        if self.discarded is not None:
            self.discarded += len(data)
            if self.discarded > LINGER_BYTES:
                self.conn.close()
            return
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER:
            self.conn.pause_reading()
        self._wake()

    def finish(self) -> None:
        self.done = True
        if self.discarded is not None:
            self.conn.close()
        self._wake()

    def lost(self) -> None:
        self.gone = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self) -> bytes:
        if self.expect_continue:
            self.expect_continue = False
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not self.chunks:
            if self.done:
                return b""
            if self.gone:
                raise ClientGone
            self.waiter = self.conn.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.buffered <= HIGH_WATER // 4:
            self.conn.resume_reading()
        return chunk


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests, hands them to the router one at a time,
    frames the answers (content-length, chunked, or close-delimited for HTTP/1.0)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.app = server.app
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.parsing: Request | None = None
        self.memo: Headers | None = None
        self.active: Request | None = None
        self.waiting: deque[Request] = deque()
        self.closed = False
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future | None = None
        self.last_active = 0.0
        self._reset_response()

    def _reset_response(self) -> None:
        self.started = False
        self.ended = False
        self.chunked = False
        self.close_after = False
        self.head_only = False

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.last_active = self.loop.time()
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject()
        except httptools.HttpParserError:
            self._reject()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        for req in (self.active, self.parsing):
            if req is not None and req.stream is not None:
                req.stream.lost()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def _reject(self) -> None:
        if self.active is None and not self.closed:
            self.transport.write(_BAD_REQUEST)
        self.close()

    # --- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.parsing = Request(self.client)

    def on_url(self, url: bytes) -> None:
        self.parsing.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # The parser drops a value's leading whitespace, not its trailing (RFC 9110
        # 5.5: neither is part of it).
        self.parsing.headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        req = self.parsing
        self.memo = req.finish_head(self.parser, self.memo)
        hmap = req.hmap
        length = hmap.get(b"content-length")
        expect = hmap.get(b"expect", b"").lower() == b"100-continue"
        if (
            b"transfer-encoding" in hmap
            or expect
            or (
                length is not None
                and (not length.isdigit() or int(length) > BUFFER_BELOW)
            )
        ):
            req.stream = BodyStream(self, expect)
            self._ready(req)
        else:
            req.parts = []

    def on_body(self, body: bytes) -> None:
        req = self.parsing
        if req.stream is not None:
            req.stream.feed(body)
        else:
            req.parts.append(body)

    def on_message_complete(self) -> None:
        req = self.parsing
        self.parsing = None
        if req.stream is not None:
            req.stream.finish()
            return
        parts = req.parts
        req.body = parts[0] if len(parts) == 1 else b"".join(parts)
        req.parts = None
        self._ready(req)

    # --- dispatch ------------------------------------------------------------------------

    def _ready(self, req: Request) -> None:
        if self.active is None:
            self._start(req)
        else:
            self.waiting.append(req)
            if len(self.waiting) > 16:
                self.pause_reading()

    def _start(self, req: Request) -> None:
        self.active = req
        self._reset_response()
        self.head_only = req.method == "HEAD"
        try:
            # A plain forward with a connection at hand runs on callbacks alone; the
            # rest (and what the callbacks hand back) runs as a Task.
            if self.app.fast(req, self):
                return
        except Exception:
            self.crashed()
            self.finish(req)
            return
        self.loop.create_task(self._run(req))

    async def _run(self, req: Request, work: Awaitable[None] | None = None) -> None:
        """Answer ``req`` by the router's ``handle``, or finish it by ``work``."""
        try:
            await (self.app.handle(req, self) if work is None else work)
        except ClientGone:
            self.close()
        except Exception:
            self.crashed()
        self.finish(req)

    def crashed(self) -> None:
        """The router failed on the active request: 500 if nothing was sent yet."""
        log.exception("request failed inside the router")
        if not self.started and not self.closed:
            body = (
                b'{"error": {"code": "router_error", "message": "The router failed."}}'
            )
            self.respond(
                500,
                b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
                body,
            )
        self.close_after = True

    def finish(self, req: Request) -> None:
        self.active = None
        self.last_active = self.loop.time()
        unread = req.stream is not None and not req.stream.done
        if unread and self.ended and not self.closed:
            req.stream.discard()
            return
        if (
            self.closed
            or self.close_after
            or not self.ended
            or unread
            or not req.keep_alive
        ):
            self.close()
            return
        if self.server.stopping:
            self.close()
            return
        if self.waiting:
            self._start(self.waiting.popleft())
        else:
            self.idle()

    def idle(self) -> None:
        """Between two requests, with none waiting: read the next."""
        self.resume_reading()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    # --- answering (called by the router) ------------------------------------------------

    def head(self, status: int, block: bytes, *, has_length: bool) -> bytes:
        """The status line and header block (``block``: header lines each ending CRLF)
        plus the framing this connection needs; the caller writes it."""
        self.started = True
        req = self.active
        if (
            not has_length
            and not self.head_only
            and status >= 200
            and status not in (204, 304)
        ):
            if req.http11:
                self.chunked = True
                block += b"transfer-encoding: chunked\r\n"
            else:
                self.close_after = True
        if self.close_after or not req.keep_alive or self.server.stopping:
            self.close_after = True
            block += b"connection: close\r\n"
        return status_line(status) + block + b"\r\n"

    def respond(self, status: int, block: bytes, body: bytes) -> None:
        """A whole answer whose ``block`` carries its content-length."""
        head = self.head(status, block, has_length=True)
        self.write(head if self.head_only else head + body)
        self.ended = True

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def body(self, chunk: bytes) -> None:
        if self.head_only or not chunk:
            return
        if self.chunked:
            self.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            self.write(chunk)

    def end(self, last: bytes = b"") -> None:
        if last and not self.head_only:
            if self.chunked:
                self.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last))
            else:
                self.write(last)
        elif self.chunked:
            self.write(b"0\r\n\r\n")
        self.ended = True

    async def drain(self) -> None:
        if self.closed:
            raise ClientGone
        if self.write_paused:
            self.drain_waiter = self.loop.create_future()
            await self.drain_waiter
            if self.closed:
                raise ClientGone


class Server:
    def __init__(self, app: Router) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpConnection] = set()
        self.stopping = False

    async def serve(self, sock: socket.socket) -> None:
        await self.app.startup()
        # What is loaded by now lives as long as the process: out of the collector's
        # sight, full collections no longer walk it again and again under load.
        gc.freeze()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, stop.set)
        from router import engine

        datapath = None
        if engine.wanted():
            # The C data path accepts every connection and gives Python the ones it
            # cannot serve (router.engine); the listening socket is its own.
            sock.listen(2048)
            datapath = self.app.datapath = engine.DataPath(self, sock)
            server = None
        else:
            server = await self.loop.create_server(
                lambda: HttpConnection(self), sock=sock, backlog=2048
            )
        sweeper = self.loop.create_task(self._sweep())
        host, port = sock.getsockname()[:2]
        log.info("router serving", extra={"address": f"{host}:{port}"})
        await stop.wait()
        self.stopping = True
        if server is not None:
            server.close()
        if datapath is not None:
            datapath.stop_accepting()
        sweeper.cancel()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline:
            for conn in list(self.connections):
                if conn.active is None:
                    conn.close()
            if not self.connections and (datapath is None or not datapath.busy()):
                break
            await asyncio.sleep(0.05)
        if datapath is not None:
            datapath.close()
            self.app.datapath = None
        await self.app.shutdown()

    async def _sweep(self) -> None:
        """Close keep-alive connections idle for more than KEEPALIVE_SECONDS."""
        while True:
            await asyncio.sleep(1.0)
            cutoff = self.loop.time() - KEEPALIVE_SECONDS
            for conn in list(self.connections):
                if (
                    conn.active is None
                    and conn.parsing is None
                    and conn.last_active < cutoff
                ):
                    conn.close()


def bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def run(app_factory, sock: socket.socket) -> None:
    """Serve on ``sock`` until SIGTERM/SIGINT, on uvloop."""
    import uvloop

    async def main() -> None:
        await Server(app_factory()).serve(sock)

    uvloop.run(main())
