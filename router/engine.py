"""The C data path (``router/_engine.c``) from the Python side.

The engine accepts the router's client connections and answers the requests of plain
routes by itself, with no Python per request; it gives a connection to Python (``Adopted``,
the usual ``HttpConnection``), with the bytes it has read, whenever a request is anything
else, and takes it back once Python answered it with nothing of the next request read
(``Adopted.idle``, ``Engine.adopt``). This module gives it each config version, keeps its
breakers in step with the router's, and turns what it answered into the router's metrics
and access log lines.

``ROUTER_ENGINE``: ``c`` (the default when the extension is built: ``scripts/build_engine``,
run by the README's commands) or ``python`` (every request on the Python path).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from router.breaker import CLOSED
from router.metrics import ENGINE, STATS, UPSTREAM_ERRORS
from router.server import HttpConnection
from router.shadow import ShadowJob

if TYPE_CHECKING:
    from router.app import State
    from router.server import Server

log = logging.getLogger("router")

try:
    from router._engine import Engine
except ImportError:  # not built: the Python path serves everything
    Engine = None

ENV = "ROUTER_ENGINE"
TICK_SECONDS = 0.05
KEEP_VERSIONS = 16


def wanted() -> bool:
    """Is the C data path to be used? Refuses a bad ``ROUTER_ENGINE`` by name."""
    raw = os.environ.get(ENV, "").strip().lower()
    if raw not in {"", "c", "python"}:
        raise SystemExit(
            f"router: {ENV}={os.environ[ENV]!r} is neither c (the C data path) nor python"
        )
    if raw == "python":
        return False
    if Engine is None:
        if raw == "c":
            raise SystemExit(
                f"router: {ENV}=c but the C data path is not built; run "
                "scripts/build_engine (the README's commands do)"
            )
        return False
    return True


class Adopted(HttpConnection):
    """A client connection the engine handed over, with the bytes it had read; given back
    (``give_back``) once the requests it could not serve are answered."""

    def __init__(
        self, server: Server, data: bytes, give_back: Callable[[int], bool]
    ) -> None:
        super().__init__(server)
        self.pending = data
        self.give_back = give_back

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        data, self.pending = self.pending, b""
        if data:
            self.data_received(data)

    def idle(self) -> None:
        """Nothing of the next request read, every answer written: the engine takes the
        connection back (and hands it over again if the next request is not its own).
        Otherwise it stays here, for this request at least."""
        transport = self.transport
        if (
            self.parsing is not None
            or self.closed
            or transport.get_write_buffer_size()
            or self.server.stopping
        ):
            self.resume_reading()
            return
        # The engine gets a duplicate: closing the transport (which stops Python
        # reading now, and closes its descriptor on the next loop turn) ends nothing.
        try:
            fd = os.dup(transport.get_extra_info("socket").fileno())
        except OSError:
            self.resume_reading()
            return
        if not self.give_back(fd):
            os.close(fd)
            self.resume_reading()
            return
        self.closed = True
        transport.close()


@dataclass(frozen=True)
class Served:
    """One config version as the engine has it: its backends and routes by index."""

    state: State
    backends: list[str]
    routes: list  # in the engine's match order
    labels: list[tuple[str, str, str]]  # per route: name, backend, access-log part


class DataPath:
    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.app = server.app
        self.loop = server.loop
        self.engine = Engine(
            self._handoff,
            self._failure,
            self._success,
            self._shadow,
            self.app._id_prefix,
        )
        self.engine.listen(sock.fileno())
        # What the engine's indexes mean, per config version it was given.
        self.versions: dict[int, Served] = {}
        self.current: int | None = None
        self.moved = {"handed_off": 0, "taken_back": 0}  # as far as metrics counted
        self.adopting: set[asyncio.Task] = set()
        self.quick: asyncio.TimerHandle | None = None
        self.loop.add_reader(self.engine.fileno(), self._run)
        self.ticker = self.loop.create_task(self._ticks())
        if self.app.state is not None:
            self.configure(self.app.state)

    # --- config ---------------------------------------------------------------------------

    def configure(self, state: State) -> None:
        config = state.config
        names = list(state.pools)
        index = {name: i for i, name in enumerate(names)}
        backends = []
        for name in names:
            pool = state.pools[name]
            backend = pool.backend
            family, address, port = _address(backend.url, backend.socket)
            backends.append((
                name, family, address, port, pool.host_header,
                float(backend.connect_timeout), float(backend.read_timeout),
                int(backend.max_connections), self._closed(name),
            ))  # fmt: skip
        # Most specific first: the first match is the one ``RouterConfig.match`` picks
        # (validation rules out ties between routes that can match the same request).
        ordered = sorted(config.routes, key=lambda r: r.specificity, reverse=True)
        routes, labels = [], []
        for route in ordered:
            line, logged = state.label(route, route.to)
            # Shadowed reads too: the engine answers them and hands Python the job.
            routes.append((
                None if route.any_method else tuple(sorted(route.methods)),
                tuple(route.pattern.segments), route.pattern.glob,
                route.canary is None and not route.fallback, index[route.to], line,
                route.shadow is not None,
                float(route.shadow.percent) if route.shadow is not None else 0.0,
            ))  # fmt: skip
            labels.append((route.name, route.to, logged))
        internal = [(tuple(p.segments), p.glob) for p in config.settings.internal]
        self.drain()  # what the previous version answered is logged under it
        settings = config.settings
        self.engine.configure(
            state.version, backends, routes, internal, settings.max_body_bytes,
            settings.shadow_max_body_bytes,
        )  # fmt: skip
        self.versions[state.version] = Served(state, names, ordered, labels)
        self.current = state.version
        for old in sorted(self.versions)[:-KEEP_VERSIONS]:
            del self.versions[old]

    def _closed(self, name: str) -> bool:
        breaker = self.app.breakers.get(name)
        return breaker is None or breaker.state == CLOSED

    # --- the engine's calls ---------------------------------------------------------------

    def _run(self) -> None:
        later = self.engine.run()
        if later is not None and later < TICK_SECONDS and self.quick is None:
            self.quick = self.loop.call_later(later, self._quick)

    def _quick(self) -> None:
        self.quick = None
        later = self.engine.tick()
        if later is not None and later < TICK_SECONDS:
            self.quick = self.loop.call_later(later, self._quick)

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                self.engine.tick()
                self._sync_breakers()
                self.drain()
            except Exception:
                log.exception("the C data path's timer failed")

    def _sync_breakers(self) -> None:
        version = self.current
        if version is None or version not in self.versions:
            return
        for i, name in enumerate(self.versions[version].backends):
            self.engine.allow(i, self._closed(name))

    def _handoff(self, fd: int, data: bytes) -> None:
        sock = socket.socket(fileno=fd)
        task = self.loop.create_task(self._adopt(sock, data))
        self.adopting.add(task)
        task.add_done_callback(self.adopting.discard)

    async def _adopt(self, sock: socket.socket, data: bytes) -> None:
        try:
            await self.loop.connect_accepted_socket(
                lambda: Adopted(self.server, data, self.engine.adopt), sock
            )
        except OSError:
            sock.close()

    def _shadow(
        self,
        version: int,
        index: int,
        method: str,
        target: bytes,
        path: str,
        block: bytes,
        body: bytes,
        status: int,
        head: bytes,
        primary_body: bytes | None,
    ) -> None:
        """A shadowed read the engine answered: the job ``Router.handle`` would offer."""
        shadower = self.app.shadower
        found = self.versions.get(version)
        if shadower is None or found is None:
            return
        state = found.state
        route = found.routes[index]
        shadow = route.shadow
        if primary_body is None:  # over shadow_max_body_bytes
            shadower.skip(route.name, shadow.to)
            return
        headers = {}
        for line in head.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.decode("latin-1")] = value.strip(b" \t").decode("latin-1")
        shadower.offer(
            ShadowJob(
                route=route.name, backend=shadow.to, pool=state.pools[shadow.to],
                target=target, method=method, path=path, headers=block, body=body,
                primary_status=status, primary_headers=headers,
                primary_body=primary_body, primary_backend=route.to,
                primary_pool=state.pools[route.to],
                recheck_seconds=state.config.settings.shadow_recheck_seconds,
            )
        )  # fmt: skip

    def _names(self, version: int, backend: int) -> str | None:
        found = self.versions.get(version)
        if found is None or backend >= len(found.backends):
            return None
        return found.backends[backend]

    def _failure(self, version: int, backend: int, kind: str) -> None:
        name = self._names(version, backend)
        if name is None:
            return
        breaker = self.app.breakers.get(name)
        if breaker is not None:
            breaker.failure()
        UPSTREAM_ERRORS.labels(name, kind).inc()
        if version == self.current:
            self.engine.allow(backend, self._closed(name))

    def _success(self, version: int, backend: int) -> None:
        name = self._names(version, backend)
        breaker = self.app.breakers.get(name) if name else None
        if breaker is not None:
            breaker.success()

    # --- what it answered -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        answered, handed_off, taken_back = self.engine.counts()
        return {
            "answered": answered,
            "handed_off": handed_off,
            "taken_back": taken_back,
        }

    def drain(self) -> None:
        records = self.engine.drain()
        counts = self.counts()
        for event, counted in self.moved.items():
            if counts[event] > counted:
                ENGINE.labels(event).inc(counts[event] - counted)
                self.moved[event] = counts[event]
        if not records:
            return
        ENGINE.labels("answered").inc(len(records))
        access = self.app.access_log
        for version, route, _, method, path, status, seconds, rid in records:
            found = self.versions.get(version)
            if found is None:
                continue
            name, backend, logged = found.labels[route]
            STATS.add(name, backend, method, status, seconds)
            if access is not None:
                access.add(rid, method, path, status, logged, version, seconds)

    # --- stopping -------------------------------------------------------------------------

    def stop_accepting(self) -> None:
        self.engine.stop_accepting()
        self.engine.close_idle()

    def busy(self) -> int:
        return self.engine.busy()[1]

    def close(self) -> None:
        self.ticker.cancel()
        if self.quick is not None:
            self.quick.cancel()
        self.loop.remove_reader(self.engine.fileno())
        self.drain()
        self.engine.close()


def _address(url: str, sock: str | None) -> tuple[str, str, int]:
    """Where the engine connects: a Unix socket, or an IP address and port. A name to
    resolve or TLS: "" (the engine leaves such a backend's requests to Python)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return "", "", 0
    if sock:
        return "unix", sock, 0
    host = parts.hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "", "", 0
    return ("inet" if ip.version == 4 else "inet6"), str(ip), parts.port or 80
