"""Keep-alive HTTP/1.1 connections to one backend: a pool of raw asyncio connections with an
httptools response parser each, per-backend connect and read timeouts, streamed bodies.

A general client (aiohttp) spent about half of the router's CPU per request building
objects the router never looks at; this one writes one buffer per request and hands back
the parsed status, raw headers and body chunks.

A backend that closes every connection (gunicorn's sync workers) needs a connect per
request. A pool that has seen the backend answer ``Connection: close`` connects on a raw
socket instead (``Link``): the request is written in the same loop turn as the connect
(on loopback the handshake is done when ``connect`` returns), with no Task, future or
transport setup in between, and the gunicorn worker that accepted it never waits for us.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import ipaddress
import select
import socket
import ssl
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import httptools

from strangler.routing.schema import Backend

# Below the keep-alive of uvicorn (5 s) and of gunicorn (2 s by default, 5 s as deployed):
# never reuse a connection the backend is about to close.
IDLE_SECONDS = 1.5
HIGH_WATER = 256 * 1024
SWEEP_SECONDS = 0.05  # how late a read timeout may be noticed
WHOLE_BELOW = 64 * 1024  # a body of known length up to this is awaited whole
RESOLVE_SECONDS = 5.0  # a backend named by host name is looked up again this often
# A pool of kept-alive connections grows by one connection at a time, this far apart
# (its first opens at once). gunicorn's gthread workers keep the connections they accept,
# and a burst of connects goes to whichever worker is quicker to accept them: with all of
# them, one worker queues the whole load while the other idles, at half the throughput,
# for as long as the pool lives. Opened one by one, each new connection goes to a worker
# with time to take it. Backends that close every connection (sync workers) are not held
# back: they need a connect per request.
SLOW_START_SECONDS = 0.005
_NO_BODY_STATUS = frozenset({204, 304})
_READ_SIZE = 64 * 1024  # under malloc's mmap threshold: no mmap/munmap per read


class UpstreamError(Exception):
    """The backend could not be reached or failed mid-exchange; ``kind`` says how."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = kind  # connect | timeout | error


class Response(asyncio.Protocol):
    """One connection to the backend; while a request is in flight, also its response."""

    # One per request to a backend that closes every connection: no instance dict to
    # build and free each time.
    __slots__ = (
        "block",
        "buffered",
        "chunks",
        "closed",
        "complete",
        "content_length",
        "counted",
        "error",
        "feeding",
        "got_bytes",
        "head_buf",
        "head_done",
        "head_only",
        "idle_since",
        "keep_alive",
        "last_activity",
        "loop",
        "lower",
        "notify",
        "parser",
        "paused",
        "pool",
        "reused",
        "status",
        "transport",
        "waiter",
        "woken",
    )

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.counted = True
        self._reset()

    def _reset(self) -> None:
        self.notify: Callable[[], None] | None = None
        self.feeding = False
        self.woken = False
        self.status = 0
        # The answer's header lines as the backend sent them (each ending CRLF, no status
        # line) and a lower-cased copy behind a leading CRLF, for finding names at line
        # starts: one C call each instead of a Python callback per header.
        self.head_buf = b""
        self.block = b""
        self.lower = b""
        self.content_length: int | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.head_done = False
        self.keep_alive = False
        self.complete = False
        self.got_bytes = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future | None = None
        self.head_only = False
        self.paused = False
        self.last_activity = 0.0

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.last_activity = self.loop.time()
        if not self.head_done:
            self.head_buf = self.head_buf + data if self.head_buf else data
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.feeding = False
            self._fail(UpstreamError("error", f"bad response: {exc}"))
            self.transport.close()
        self.feeding = False
        if self.woken:
            # A callback exchange hears once per read, after the parser is done with it:
            # a head and a whole body arriving together are one answer, not a stream.
            self.woken = False
            if self.notify is not None:
                self.notify()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.inflight.discard(self)
        self.parser = None  # breaks the parser <-> protocol cycle: no work for the GC
        self.pool.forget(self)
        if not self.complete:
            if self.head_done and self.content_length is None and not self.error:
                # Close-delimited body (HTTP/1.0 style): the end is the close.
                self.on_message_complete()
            else:
                self._fail(UpstreamError("error", "connection closed by the backend"))
        self._wake()

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks -------------------------------------------------------------

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        buf, self.head_buf = self.head_buf, b""
        end = buf.find(b"\r\n\r\n")
        if end < 0:  # the parser wants CRLF line ends: not seen to happen
            raise httptools.HttpParserError("no CRLF CRLF at the end of the head")
        if 100 <= status < 200 and status != 101:
            # An interim answer (103 Early Hints, an unasked 100): the real one follows,
            # on the bytes after it. Dropped, as the C data path does.
            self.head_buf = buf[end + 4 :]
            return
        self.status = status
        block = self.block = buf[buf.find(b"\r\n") + 2 : end + 2]
        lower = self.lower = b"\r\n" + block.lower()
        length = None
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            length = int(lower[at + 17 : lower.find(b"\r\n", at + 17)])
        self.content_length = length
        self.keep_alive = self.parser.should_keep_alive()
        self.pool.closes = not self.keep_alive
        self.head_done = True
        if self.head_only or self.status in _NO_BODY_STATUS or self.status < 200:
            self.complete = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done:  # the end of an interim answer
            return
        self.complete = True
        self.pool.inflight.discard(self)
        self._wake()

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The answer's headers as (name, value) pairs, in order."""
        pairs = []
        for line in self.block.split(b"\r\n")[:-1]:
            name, _, value = line.partition(b":")
            pairs.append((name, value.strip(b" \t")))
        return pairs

    # --- the exchange --------------------------------------------------------------------

    def _wake(self) -> None:
        if self.notify is not None:
            if self.feeding:
                self.woken = True
            else:
                self.notify()
            return
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._wake()

    def expired(self, now: float) -> bool:
        """Past the read timeout while the router waits on the backend (a body paused
        for a slow client is not the backend's fault)?"""
        return (
            self.waiter is not None or self.notify is not None
        ) and now - self.last_activity >= self.pool.backend.read_timeout

    def time_out(self) -> None:
        self._fail(UpstreamError("timeout", "no answer in time"))
        self.transport.close()

    async def _wait(self) -> None:
        self.last_activity = self.loop.time()
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def send(self, head: bytes, body: bytes | None, head_only: bool) -> None:
        if self.reused or self.got_bytes or self.error is not None:
            self._reset()  # else nothing has touched what __init__ set
        self.head_only = head_only
        self.last_activity = self.loop.time()
        self.pool.watch(self)
        self.transport.write(head + body if body else head)

    async def send_stream(self, chunks: AsyncIterator[bytes], chunked: bool) -> None:
        async for chunk in chunks:
            if self.closed:
                raise UpstreamError("error", "connection closed by the backend")
            if chunked:
                self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self.transport.write(chunk)
        if chunked:
            self.transport.write(b"0\r\n\r\n")

    @property
    def settled(self) -> bool:
        """The head is in, and so is the body when its length is known and at most
        WHOLE_BELOW. Backends write the two apart (gunicorn does); waiting for the rest
        makes one write to the client instead of two. Bodies of unknown length (chunked,
        streamed events) are not waited for."""
        return self.head_done and (
            self.complete
            or self.content_length is None
            or self.content_length > WHOLE_BELOW
        )

    async def head(self) -> None:
        """Wait for the status line and headers. Not for the body: a shadowed write's
        answer reports its events in the head, and the fence book wants them at once."""
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self._wait()
        if self.error is not None and not self.chunks:
            raise self.error

    async def settle(self) -> None:
        """Wait until ``settled``: a small body of known length is in whole."""
        while not self.settled and self.error is None:
            await self._wait()

    def take(self) -> bytes:
        """Everything buffered now (b"" when nothing is)."""
        if not self.chunks:
            return b""
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        return data

    async def read(self) -> bytes:
        """The next part of the body; b"" at its end."""
        while True:
            data = self.take()
            if data:
                return data
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            await self._wait()

    async def read_all(self) -> bytes:
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        """Give the connection back when the body was read whole, else close it."""
        self.pool.inflight.discard(self)
        reusable = (
            self.complete
            and not self.closed
            and self.error is None
            and not self.chunks
            and self.keep_alive
        )
        if self.head_only and reusable:
            # The parser expected a body after a HEAD answer; start a fresh one.
            self.parser = httptools.HttpResponseParser(self)
        self.pool.put_back(self, reusable)


_IN, _OUT = select.EPOLLIN, select.EPOLLOUT
_HUP = select.EPOLLERR | select.EPOLLHUP


class _Poller:
    """One epoll set per event loop for the raw upstream sockets (``Link``); the loop
    watches only the set's own descriptor. uvloop's ``add_reader``/``remove_reader``
    cost eight system calls per socket (libuv's poll handle tries the descriptor with an
    epoll ADD and DEL, sets it non-blocking again, adds it, then deletes it three times
    on the way out); here a socket costs one ``epoll_ctl``, and closing it takes it out
    of the set. A connect per request (gunicorn's sync workers) pays that every time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.epoll = select.epoll()
        self.links: dict[int, Link] = {}
        self.turn = 0
        loop.add_reader(self.epoll.fileno(), self._ready)

    def watch(self, link: Link, events: int) -> None:
        self.links[link.fd] = link
        link.turn = self.turn
        self.epoll.register(link.fd, events)
        link.watched = True

    def change(self, link: Link, events: int) -> None:
        """What ``link`` waits for now. Nothing (paused, nothing to send) takes it out of
        the set: epoll reports a hang-up whatever the mask, and a paused socket whose
        backend has closed would wake the loop on every turn."""
        if not events:
            if link.watched:
                self.epoll.unregister(link.fd)
                link.watched = False
        elif link.watched:
            self.epoll.modify(link.fd, events)
        else:
            self.epoll.register(link.fd, events)
            link.watched = True

    def forget(self, link: Link) -> None:
        """Before its socket closes (which takes it out of the set)."""
        if self.links.get(link.fd) is link:
            del self.links[link.fd]

    def _ready(self) -> None:
        self.turn += 1
        turn, links = self.turn, self.links
        for fd, events in self.epoll.poll(0):
            link = links.get(fd)
            # A socket opened while this batch is handled may have the number of one
            # closed earlier in it: the events were not for it.
            if link is None or link.turn == turn:
                continue
            if link.pending and events & (_OUT | _HUP):
                link._writable()
            if link.reading and events & (_IN | _HUP):
                link._readable()


_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Poller] = (
    weakref.WeakKeyDictionary()
)


def _poller(loop: asyncio.AbstractEventLoop) -> _Poller:
    poller = _pollers.get(loop)
    if poller is None:
        poller = _pollers[loop] = _Poller(loop)
    return poller


class Link:
    """The transport half of a raw non-blocking socket to a plain-HTTP backend: what
    ``Response`` uses of an asyncio transport (write, close, pause and resume reading).
    Its readiness comes from the loop's ``_Poller``.

    ``write`` sends at once; bytes the socket does not take yet (still connecting, or a
    full buffer) wait for writability, and only then does the connect timeout run. An error before the connection is known to be up
    fails the exchange as a connect error, so the router answers 502 "unreachable" and a
    safe request may fall back, as with a refused asyncio connect.
    """

    __slots__ = (
        "closed",
        "connect_timeout",
        "connected",
        "fd",
        "loop",
        "pending",
        "poller",
        "protocol",
        "reading",
        "sock",
        "timer",
        "turn",
        "watched",
    )

    def __init__(
        self,
        protocol: Response,
        sock: _socket.socket,
        connect_timeout: float,
        poller: _Poller,
    ) -> None:
        self.protocol = protocol
        self.loop = protocol.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.connected = False
        self.closed = False
        self.pending = bytearray()
        self.reading = True
        self.connect_timeout = connect_timeout
        self.timer: asyncio.TimerHandle | None = None
        self.poller = poller
        self.poller.watch(self, _IN)
        protocol.connection_made(self)

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        if self.pending:
            self.pending += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        if sent:
            self._up()
        if sent < len(data):
            self.pending += data[sent:]
            self._watch()
            if not self.connected and self.timer is None:
                self.timer = self.loop.call_later(
                    self.connect_timeout, self._connect_timed_out
                )

    def _writable(self) -> None:
        if self.closed:
            return
        if not self.connected:
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._lost(OSError(code, errno.errorcode.get(code, str(code))))
                return
            self._up()
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        del self.pending[:sent]
        if not self.pending:
            self._watch()

    def _readable(self) -> None:
        if self.closed:
            return
        try:
            data = self.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if data:
            self._up()
            self.protocol.data_received(data)
        else:
            self._lost(None)

    def _up(self) -> None:
        if not self.connected:
            self.connected = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    def _connect_timed_out(self) -> None:
        self.timer = None
        if not self.connected and not self.closed:
            self.protocol._fail(UpstreamError("connect", "connect timed out"))
            self.close()

    def _lost(self, exc: Exception | None) -> None:
        if not self.connected and not self.closed:
            self.protocol._fail(UpstreamError("connect", str(exc or "connect failed")))
        self.close(exc)

    def _watch(self) -> None:
        """Tell the poller what this socket waits for now."""
        self.poller.change(
            self, (_IN if self.reading else 0) | (_OUT if self.pending else 0)
        )

    def pause_reading(self) -> None:
        if self.reading and not self.closed:
            self.reading = False
            self._watch()

    def resume_reading(self) -> None:
        if not self.reading and not self.closed:
            self.reading = True
            self._watch()

    def close(self, exc: Exception | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.poller.forget(self)
        self.sock.close()
        protocol, self.protocol = self.protocol, None
        self.loop.call_soon(protocol.connection_lost, exc)


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Pool:
    """One backend's keep-alive connections, at most ``backend.max_connections`` open."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.loop = asyncio.get_running_loop()
        parts = urlsplit(backend.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        self.host_header = parts.netloc.encode("latin-1")
        # Set from every answer's Connection header: the backend closes after each one.
        self.closes = False
        self.address: tuple | str | None = None
        self.family = socket.AF_INET
        self.resolved_at = -RESOLVE_SECONDS
        if backend.socket is not None:
            # A Unix socket: no name to look up, no TCP handshake, no TIME_WAIT.
            self.family = socket.AF_UNIX
            self.address = backend.socket
            self.resolved_at = float("inf")
        else:
            try:
                ip = ipaddress.ip_address(self.host)
            except ValueError:
                pass
            else:
                self.family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
                self.address = (self.host, self.port)
                self.resolved_at = float("inf")
        self.idle: list[Response] = []
        # Requests in flight, checked against the read timeout every SWEEP_SECONDS: one
        # timer per pool rather than one per request.
        self.inflight: set[Response] = set()
        self.sweeper: asyncio.TimerHandle | None = None
        self.open = 0
        self.waiters: deque[asyncio.Future] = deque()
        self.closing = False
        self.opened_at = -float("inf")  # when the pool last opened a connection
        self.poller: _Poller | None = None  # the loop's, once a raw socket needs it

    def take_idle(self) -> Response | None:
        """A kept-alive connection that is fresh enough to reuse, if there is one."""
        now = self.loop.time()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                conn.reused = True
                return conn
            self._drop(conn)
        return None

    def connect_now(self) -> Response | None:
        """A connection without waiting: an idle one, or a raw connect to a backend that
        closes every connection and whose address is known. None when only ``acquire``
        can give one (a slot to wait for, a name to look up, an asyncio connect)."""
        conn = self.take_idle()
        if conn is not None:
            return conn
        if (
            self.closes
            and self.ssl is None
            and self.open < self.backend.max_connections
            and self.loop.time() - self.resolved_at <= RESOLVE_SECONDS
        ):
            self.open += 1
            return self._raw()
        return None

    async def acquire(self) -> Response:
        conn = self.take_idle()
        if conn is not None:
            return conn
        if self.open >= self.backend.max_connections:
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            await waiter
            return await self.acquire()
        if not self.closes and self.open:
            wait = self.opened_at + SLOW_START_SECONDS - self.loop.time()
            if wait > 0:
                # Until then, or until a connection is given back (``put_back`` wakes
                # one waiter), whichever comes first: then take it, or open one.
                waiter = self.loop.create_future()
                self.waiters.append(waiter)
                timer = self.loop.call_later(wait, _wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                return await self.acquire()
        self.open += 1
        self.opened_at = self.loop.time()
        if self.closes and self.ssl is None:
            return await self._connect_raw()
        connect = (
            self.loop.create_connection(
                lambda: Response(self), self.host, self.port, ssl=self.ssl
            )
            if self.family != socket.AF_UNIX
            else self.loop.create_unix_connection(lambda: Response(self), self.address)
        )
        try:
            _, conn = await asyncio.wait_for(connect, self.backend.connect_timeout)
        except TimeoutError:
            self._released_slot()
            raise UpstreamError("connect", "connect timed out") from None
        except OSError as exc:
            self._released_slot()
            raise UpstreamError("connect", str(exc)) from None
        except BaseException:
            self._released_slot()
            raise
        conn.reused = False
        return conn

    async def _connect_raw(self) -> Response:
        """A new connection on a raw socket (``Link``), holding a slot already taken."""
        try:
            if self.loop.time() - self.resolved_at > RESOLVE_SECONDS:
                infos = await self.loop.getaddrinfo(
                    self.host, self.port, type=socket.SOCK_STREAM
                )
                self.family, _, _, _, self.address = infos[0]
                self.resolved_at = self.loop.time()
        except OSError as exc:
            self._released_slot()
            raise UpstreamError("connect", str(exc)) from None
        return self._raw()

    def _raw(self) -> Response:
        """Connect a raw socket to the resolved address, holding a slot already taken."""
        try:
            # The C socket type: ``socket.socket`` adds Python-level __init__ and close.
            sock = _socket.socket(
                self.family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
            )
        except OSError as exc:
            self._released_slot()
            raise UpstreamError("connect", str(exc)) from None
        try:
            if self.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(self.address)
        except OSError as exc:
            sock.close()
            self._released_slot()
            raise UpstreamError("connect", str(exc)) from None
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self._released_slot()
            reason = errno.errorcode.get(code, str(code))
            if self.family == socket.AF_UNIX:
                # EAGAIN here is a full listen backlog, not a connect in progress.
                raise UpstreamError("connect", f"{reason} on {self.address}")
            self.resolved_at = -RESOLVE_SECONDS
            raise UpstreamError("connect", reason)
        conn = Response(self)
        conn.reused = False
        poller = self.poller
        if poller is None:
            poller = self.poller = _poller(self.loop)
        Link(conn, sock, self.backend.connect_timeout, poller)
        return conn

    async def exchange(
        self,
        method: bytes,
        target: bytes,
        headers: bytes,
        body: bytes | None,
        stream: AsyncIterator[bytes] | None = None,
        chunked: bool = False,
        retry_stale: bool = False,
    ) -> Response:
        """Send one request (``headers`` is the header block, each line ending CRLF) and
        wait for the answer's head; the caller reads the body and calls ``release``."""
        head = self.request_head(method, target, headers)
        while True:
            conn = await self.acquire()
            conn.send(head, body, method == b"HEAD")
            try:
                if stream is not None:
                    await conn.send_stream(stream, chunked)
                await conn.head()
            except UpstreamError as exc:
                conn.release()
                # A kept-alive connection the backend closed just before our request
                # arrived: nothing was processed, so a safe request may go again.
                if (
                    retry_stale
                    and conn.reused
                    and exc.kind == "error"
                    and not conn.got_bytes
                ):
                    retry_stale = False
                    continue
                raise
            except BaseException:
                conn.release()
                raise
            return conn

    def watch(self, conn: Response) -> None:
        self.inflight.add(conn)
        if self.sweeper is None:
            self.sweeper = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    def _sweep(self) -> None:
        self.sweeper = None
        now = self.loop.time()
        for conn in [c for c in self.inflight if c.expired(now)]:
            self.inflight.discard(conn)
            conn.time_out()
        if self.inflight:
            self.sweeper = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    def request_head(self, method: bytes, target: bytes, headers: bytes) -> bytes:
        return b"%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
            method,
            target,
            self.host_header,
            headers,
        )

    def put_back(self, conn: Response, reusable: bool) -> None:
        if reusable and not self.closing:
            conn.idle_since = self.loop.time()
            self.idle.append(conn)
            self._wake_one()
        else:
            self._drop(conn)

    def forget(self, conn: Response) -> None:
        """The connection closed (either side): it no longer holds a slot."""
        if conn in self.idle:
            self.idle.remove(conn)
        self._drop(conn)

    def _drop(self, conn: Response) -> None:
        if not conn.closed:
            conn.closed = True
            conn.transport.close()
        if conn.counted:
            conn.counted = False
            self._released_slot()

    def _released_slot(self) -> None:
        self.open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self.closing = True
        for conn in list(self.idle):
            self.forget(conn)
