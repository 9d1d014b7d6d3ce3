"""The router: match a route, pick the backend (canary, override, breaker), proxy the request
over a keep-alive pool per backend, fall back for safe methods, hand the request to the
shadower, and answer ``/metrics`` and the operator's ``/_strangler/`` pages.

Config comes from the versioned store (``strangler.routing.store``), polled every half
second; a new version is validated fully and swapped in with one assignment, so a request
is routed wholly by the version it started with. An invalid version is refused and logged.
``router.server`` parses the HTTP; this module decides what to do with each request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from router import status
from router.breaker import CLOSED, Breaker
from router.fences import Write
from router.logs import AccessLog, configure_logging, route_and_backend
from router.metrics import (
    CONFIG_REJECTED,
    CONFIG_VERSION,
    FALLBACKS,
    OWNER_RETRIES,
    REGISTRY,
    STATS,
    UPSTREAM_ERRORS,
)
from router.server import BodyStream, BodyTooLarge, HttpConnection, Request
from router.shadow import DRY_RUN_HEADER, TOKEN_HEADER, Shadower, ShadowJob
from router.upstream import Pool, Response, UpstreamError
from router.workers import MergedRegistry, Shared, families, merged_families
from strangler.events.refs import (
    EVENTS_HEADER,
    FENCE_HEADER,
    OVERTAKE_HEADER,
    BadRefs,
    EventRef,
    parse_refs,
)
from strangler.routing.canary import key_value, on_canary
from strangler.routing.schema import (
    SAFE_METHODS,
    ConfigError,
    Route,
    RouterConfig,
    Settings,
    load_config,
)
from strangler.routing.store import RouteStore, StoreError

log = logging.getLogger("router")

ROUTE_HEADER = b"x-strangler-route"
EVENTS = EVENTS_HEADER.lower().encode()
OVERRIDE_HEADER = b"x-strangler-backend"
OPERATOR_HEADER = b"x-strangler-operator-token"
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
# Never forwarded from a client: only the router itself may ask for a dry run or fence
# one. The X-Forwarded-* and X-Request-ID headers are rewritten, and 100-continue is the
# router's.
REQUEST_STRIPPED = HOP_BY_HOP | {
    DRY_RUN_HEADER.lower().encode(),
    TOKEN_HEADER.lower().encode(),
    FENCE_HEADER.lower().encode(),
    OVERTAKE_HEADER.lower().encode(),
    OVERRIDE_HEADER,
    OPERATOR_HEADER,
    b"x-request-id",
    b"expect",
}
# A backend's events are for the router's fences only, never for the client.
RESPONSE_STRIPPED = (HOP_BY_HOP - {b"content-length"}) | {
    b"x-request-id",
    ROUTE_HEADER,
    EVENTS,
}
# A whole header line whose name is in RESPONSE_STRIPPED, found in a lower-cased block
# behind a leading CRLF (``Response.lower``): the match ends at the next line's start.
_RESPONSE_STRIPPED_LINE = re.compile(
    rb"\r\n(?:"
    + b"|".join(re.escape(n) for n in sorted(RESPONSE_STRIPPED, key=len, reverse=True))
    + rb")[ \t]*:[^\r\n]*(?=\r\n)"
)
SAFE_BYTES = frozenset(m.encode() for m in SAFE_METHODS)
BODYLESS_STATUS = frozenset({204, 304})
ROUTE_CACHE_SIZE = 4096
# How long a write answered 409 owned_elsewhere is sent again while ownership moves (_Again).
OWNER_WAIT_SECONDS = 3.0
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_JSON = b"content-type: application/json\r\n"


class UpstreamFailure(Exception):
    def __init__(self, status: int, kind: str, backend: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.backend = backend


@dataclass
class State:
    """One config version and what the hot path precomputes from it."""

    version: int
    config: RouterConfig
    pools: dict[str, Pool]
    loaded_at: float = field(default_factory=time.time)
    routes: dict[tuple[str, str], Route | None] = field(default_factory=dict)
    labels: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)

    def match(self, method: str, path: str) -> Route | None:
        """The route for this request; None for no route or an internal path."""
        key = (method, path)
        try:
            return self.routes[key]
        except KeyError:
            pass
        config = self.config
        route = None if config.is_internal(path) else config.match(method, path)
        if len(self.routes) >= ROUTE_CACHE_SIZE:
            self.routes.clear()
        self.routes[key] = route
        return route

    def label(self, route: Route, backend: str) -> tuple[bytes, str]:
        """The X-Strangler-Route header line and the access log's route/backend part."""
        key = (route.name, backend)
        found = self.labels.get(key)
        if found is None:
            value = f"{route.name}; backend={backend}; version={self.version}"
            found = self.labels[key] = (
                ROUTE_HEADER + b": " + value.encode("latin-1") + b"\r\n",
                route_and_backend(route.name, backend),
            )
        return found


def _own_path(path: str) -> bool:
    """The router's own pages: never proxied."""
    return (
        path == "/metrics" or path.startswith("/_strangler/") or path == "/_strangler"
    )


def _plain(route: Route) -> bool:
    """A route that only forwards (no canary, shadow or fallback): the callback path
    can take its requests."""
    return route.canary is None and route.shadow is None and not route.fallback


def _over_limit(hmap: dict[bytes, bytes], limit: int) -> bool:
    """A Content-Length that is not a number or is over ``limit`` (answered 413)."""
    length = hmap.get(b"content-length")
    return length is not None and (not length.isdigit() or int(length) > limit)


def _too_large(conn: HttpConnection, limit: int, id_line: bytes) -> None:
    """413 for a body over the limit; the connection closes, since the unread rest of
    the body would otherwise be taken for the next request."""
    conn.close_after = True
    _error(
        conn, 413, "too_large", f"Request body over the {limit}-byte limit.", id_line
    )


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class Router:
    def __init__(
        self,
        store: RouteStore,
        *,
        operator_token: str | None = None,
        router_token: str | None = None,
        poll_interval: float = 0.5,
        access_log_enabled: bool = True,
        rules_dir: Path | None = None,
        owner_wait_seconds: float = OWNER_WAIT_SECONDS,
    ) -> None:
        self.store = store
        self.owner_wait_seconds = owner_wait_seconds
        self.operator_token = operator_token or None
        self._operator_bytes = (operator_token or "").encode()
        self.router_token = router_token or None
        self._token_line = (
            TOKEN_HEADER.lower().encode() + b": " + router_token.encode() + b"\r\n"
            if router_token
            else b""
        )
        self.poll_interval = poll_interval
        self.access_log = AccessLog() if access_log_enabled else None
        self.rules_dir = rules_dir
        self.state: State | None = None
        self.breakers: dict[str, Breaker] = {}
        self.last_error: dict[str, Any] | None = None
        self.rejected_version: int | None = None
        self.shadower: Shadower | None = None
        self._poller: asyncio.Task | None = None
        self._retired: set[asyncio.Task] = set()
        self._id_prefix = ""
        self._ids = itertools.count()
        # Several workers (ROUTER_WORKERS > 1): the folder where each one publishes its
        # figures for the others' /metrics and status pages (router.workers).
        self.shared = Shared.from_env()
        # The C data path (router.engine), when the server runs it.
        self.datapath = None

    # --- lifecycle ------------------------------------------------------------------------

    async def startup(self) -> None:
        # Per process: workers fork from one parent and must not share request ids.
        self._id_prefix = os.urandom(8).hex()
        self.store.root.mkdir(parents=True, exist_ok=True)
        await self.reload()
        # Queue size and workers come from the config live at start; changing them needs
        # a restart (the queue is not resized under load).
        settings = self.state.config.settings if self.state else Settings()
        self.shadower = Shadower(
            queue_size=settings.shadow_queue,
            workers=settings.shadow_workers,
            record_path=self.store.root / "shadow.jsonl",
            router_token=self.router_token,
            rules_dir=self.rules_dir,
        )
        self.shadower.start()
        self._poller = asyncio.create_task(self._poll())

    async def shutdown(self) -> None:
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.shadower:
            await self.shadower.stop()
        for task in list(self._retired):
            task.cancel()
        if self.state:
            for pool in self.state.pools.values():
                await pool.close()
        if self.access_log:
            self.access_log.flush()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.reload()
            except Exception:
                log.exception("config reload failed")
            if self.shared is not None:
                try:
                    self.shared.publish(self.published())
                except OSError as exc:
                    log.warning(
                        "cannot publish this worker's figures",
                        extra={"folder": str(self.shared.root), "error": str(exc)},
                    )

    async def reload(self) -> None:
        """Swap in the store's current version if it is new and valid; else keep serving."""
        try:
            version = self.store.current_version()
        except StoreError as exc:
            self._reject(None, str(exc))
            return
        if version is None or (self.state and self.state.version == version):
            return
        if version == self.rejected_version:
            return
        try:
            text = self.store.read(version)
            config = load_config(text, source=str(self.store.version_path(version)))
        except (StoreError, ConfigError, OSError) as exc:
            self._reject(version, str(exc))
            return
        self._swap(version, config)

    def _reject(self, version: int | None, why: str) -> None:
        self.rejected_version = version
        CONFIG_REJECTED.inc()
        self.last_error = {"version": version, "error": why, "at": time.time()}
        log.error(
            "config version refused; the running version stays live",
            extra={
                "refused_version": version,
                "live_version": self.state.version if self.state else None,
                "error": why,
            },
        )

    def _swap(self, version: int, config: RouterConfig) -> None:
        old = self.state
        pools: dict[str, Pool] = {}
        for name, backend in config.backends.items():
            previous = old.pools.get(name) if old else None
            pools[name] = (
                previous
                if previous is not None and previous.backend == backend
                else Pool(backend)
            )
        s = config.settings
        for name in config.backends:
            breaker = self.breakers.get(name)
            if breaker is None:
                self.breakers[name] = Breaker(
                    name, s.breaker_failures, s.breaker_reset_seconds
                )
            else:
                breaker.failures = s.breaker_failures
                breaker.reset_seconds = s.breaker_reset_seconds
        self.state = State(version, config, pools)
        if self.datapath is not None:
            self.datapath.configure(self.state)
        self.rejected_version = None
        CONFIG_VERSION.set(version)
        log.info("config version live", extra={"version": version})
        if old:
            stale = [p for n, p in old.pools.items() if pools.get(n) is not p]
            if stale:
                task = asyncio.create_task(self._retire(stale))
                self._retired.add(task)
                task.add_done_callback(self._retired.discard)

    async def _retire(self, pools: list[Pool]) -> None:
        # Requests routed by the old version may still be streaming through these pools.
        await asyncio.sleep(60)
        for pool in pools:
            await pool.close()

    @property
    def version(self) -> int | None:
        return self.state.version if self.state else None

    def published(self) -> dict[str, Any]:
        """This worker's figures, as the other workers read them (router.workers)."""
        self.settle()
        shadower = self.shadower
        return {
            "version": self.version,
            "metrics": families(REGISTRY),
            "counts": [
                [route, backend, n]
                for (route, backend), n in STATS.per_route_and_backend().items()
            ],
            "shadow": shadower.counts.by_route if shadower else {},
            "shadow_queue": shadower.queue.qsize() if shadower else 0,
        }

    def settle(self) -> None:
        """Count what the C data path answered so far (it is drained every 50 ms)."""
        if self.datapath is not None:
            self.datapath.drain()

    def metrics_text(self) -> bytes:
        """/metrics: this worker's, plus the other workers' when there are several."""
        self.settle()
        if self.shared is None:
            return generate_latest(REGISTRY)
        merged = merged_families(families(REGISTRY), self.shared.others())
        return generate_latest(MergedRegistry(merged))

    # --- a request ------------------------------------------------------------------------

    def operator(self, hmap: dict[bytes, bytes]) -> bool:
        if not self.operator_token:
            return False
        given = hmap.get(OPERATOR_HEADER)
        if not given:
            auth = hmap.get(b"authorization", b"")
            given = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
        return bool(given) and hmac.compare_digest(given, self._operator_bytes)

    def _request_id(self, given: bytes | None) -> str:
        if given is not None and _SAFE_ID.fullmatch(given):
            return given.decode()
        return f"{self._id_prefix}{next(self._ids):016x}"

    async def handle(
        self, req: Request, conn: HttpConnection, again: _Again | None = None
    ) -> None:
        """Answer one request; ``again`` when it is sent once more because its backend
        answered 409 ``owned_elsewhere`` (``_Again``)."""
        if again is None:
            started = time.perf_counter()
            request_id = self._request_id(req.hmap.get(b"x-request-id"))
        else:
            started, request_id = again.started, again.request_id
        path = req.path
        id_line = b"x-request-id: " + request_id.encode() + b"\r\n"
        state = self.state
        route = (
            None if _own_path(path) or state is None else state.match(req.method, path)
        )
        if route is None:
            self._special(req, conn, state, id_line)
            return
        hmap = req.hmap
        backend, forced = self._choose(route, hmap, state.config)
        if backend is None:
            message = (
                f"X-Strangler-Backend names {hmap[OVERRIDE_HEADER].decode('latin-1')!r}; "
                f"backends: {', '.join(sorted(state.config.backends))}."
            )
            _error(conn, 400, "unknown_backend", message, id_line)
            return
        method = req.method
        shadow = route.shadow
        shadow_on = (
            shadow is not None
            and self.shadower is not None
            and (shadow.percent >= 100 or random.random() * 100 < shadow.percent)  # noqa: S311
        )
        safe = method in SAFE_METHODS
        settings = state.config.settings
        limit = settings.max_body_bytes
        if _over_limit(hmap, limit):
            _too_large(conn, limit, id_line)
            return
        body: bytes = req.body
        stream = req.stream
        if stream is not None and (shadow_on or (safe and route.fallback)):
            try:
                body = await _read_all(stream, limit)
            except BodyTooLarge:
                _too_large(conn, limit, id_line)
                return
            stream = None

        block = self._upstream_block(req, request_id, body, stream)
        target = req.raw_path + b"?" + req.query if req.query else req.raw_path
        # A shadowed write: the primary gets the router's token, so it reports the events
        # it commits; the principal's earlier ones are the fence of its dry run.
        fenced = (
            shadow is not None
            and not safe
            and self.shadower is not None
            and bool(self._token_line)
        )
        sent = block + self._token_line if fenced else block
        principal = self._principal(route, hmap) if fenced else None
        fences = self.shadower.fences if self.shadower is not None else None
        # In flight until its answer's events are in the book: a concurrent write of the
        # same principal answered meanwhile waits for them before its dry run (``pending``).
        write = (
            fences.begin(shadow.to, principal, route.name)
            if principal is not None
            else None
        )
        candidates = [backend]
        if safe and route.fallback and route.fallback != backend and not forced:
            candidates.append(route.fallback)
        served_by = backend
        failure: UpstreamFailure | None = None
        resp: Response | None = None
        try:
            for i, name in enumerate(candidates):
                try:
                    resp = await self._attempt(
                        state, name, method, target, sent, body, stream, safe,
                        i == len(candidates) - 1,
                    )  # fmt: skip
                except UpstreamFailure as exc:
                    failure = exc
                    continue
                except BodyTooLarge:
                    _too_large(conn, limit, id_line)
                    return
                served_by = name
                if i > 0:
                    FALLBACKS.labels(route.name, candidates[0], name).inc()
                break
        finally:
            if write is not None and resp is None:
                fences.end(shadow.to, principal, write)

        # Taken at the answer, not at the request: a write of the same user answered in
        # between may well have committed before this one decided (two casts on one
        # question: the second waits on the first's unique key and answers 409), and so
        # may one still in flight now (``pending``: the dry run waits for its events).
        fence: tuple[EventRef, ...] = ()
        pending: tuple[Write, ...] = ()
        events: tuple[EventRef, ...] = ()
        if resp is not None and fenced:
            if write is not None:
                fence = fences.fence(shadow.to, principal)
                pending = fences.open_writes(shadow.to, principal, but=write)
            events = self._events(resp, shadow.to, principal)
            if write is not None:
                fences.end(shadow.to, principal, write, events)

        if resp is None:
            assert failure is not None
            route_line, logged = state.label(route, failure.backend)
            _error(
                conn, failure.status, failure.kind, str(failure), id_line + route_line
            )
            self._done(
                route, failure.backend, logged, req, failure.status, started, request_id
            )
            return

        if not safe and stream is None:
            if resp.status == 409:
                await resp.settle()
            retry = self.owner_moving(
                resp, route, served_by, started, request_id, again
            )
            if retry is not None:
                await self.send_again(req, conn, retry)
                return
        route_line, logged = state.label(route, served_by)
        captured = (
            _Capture(settings.shadow_max_body_bytes)
            if shadow_on and stream is None
            else None
        )
        status_code = resp.status
        try:
            await self._relay(resp, conn, id_line + route_line, captured)
        except UpstreamError as exc:
            _broke_mid_response(served_by, exc)
            conn.close_after = True
        finally:
            resp.release()
        self._done(route, served_by, logged, req, status_code, started, request_id)
        if shadow is not None and shadow_on:
            if captured is None or captured.overflow:
                self.shadower.skip(route.name, shadow.to)
            else:
                self.shadower.offer(
                    ShadowJob(
                        route=route.name,
                        backend=shadow.to,
                        pool=state.pools[shadow.to],
                        target=target,
                        method=method,
                        path=path,
                        headers=block,
                        body=body,
                        primary_status=status_code,
                        primary_headers={
                            k.decode("latin-1"): v.decode("latin-1")
                            for k, v in resp.raw_headers
                        },
                        primary_body=b"".join(captured.parts),
                        primary_backend=served_by,
                        primary_pool=state.pools[served_by],
                        primary_dry_run=state.config.backends[served_by].dry_run,
                        recheck_seconds=settings.shadow_recheck_seconds,
                        principal=principal,
                        fence=fence,
                        pending=pending,
                        overtake=events,
                    )
                )

    # --- the callback path: a plain forward without a Task -------------------------------

    def fast(self, req: Request, conn: HttpConnection) -> bool:
        """Send a request for a plain route (``_plain``) at once when its backend
        has a connection at hand, and answer it from the connection's callbacks
        (``_Exchange``): no Task, coroutine or future per request. Same headers, errors,
        metrics and log line as ``handle``; False leaves the request to ``handle``."""
        state = self.state
        if state is None or req.stream is not None:
            return False
        path = req.path
        if _own_path(path):
            return False
        route = state.match(req.method, path)
        if route is None or not _plain(route):
            return False
        hmap = req.hmap
        name = route.to
        breaker = self.breakers[name]
        if breaker.state != CLOSED or OVERRIDE_HEADER in hmap:
            return False
        if _over_limit(hmap, state.config.settings.max_body_bytes):
            return False
        started = time.perf_counter()
        pool = state.pools[name]
        try:
            resp = pool.connect_now()
        except UpstreamError as exc:
            exchange = _Exchange(self, state, route, req, conn, None, started)
            exchange.fail(_failed(breaker, name, exc))
            return True
        if resp is None:
            return False
        exchange = _Exchange(self, state, route, req, conn, resp, started)
        method = req.method
        body = req.body
        target = req.raw_path + b"?" + req.query if req.query else req.raw_path
        block = self._upstream_block(req, exchange.request_id, body, None)
        resp.send(
            pool.request_head(method.encode(), target, block),
            body or None,
            method == "HEAD",
        )
        resp.notify = exchange.ready
        if resp.error is not None:  # failed while sending, before anyone listened
            exchange.ready()
        return True

    def owner_moving(
        self,
        resp: Response,
        route: Route,
        backend: str,
        started: float,
        request_id: str,
        again: _Again | None,
    ) -> _Again | None:
        """For a write's answer: when it is 409 ``owned_elsewhere`` and the wait is not
        over, the resend to make (the answer is released and the resend counted). None
        when the answer goes to the client, a refusal too once the wait is over."""
        if not _owned_elsewhere(resp):
            return None
        again = again or _Again(started, request_id, self.owner_wait_seconds)
        if not again.more():
            return None
        OWNER_RETRIES.labels(route.name, backend).inc()
        resp.release()
        return again

    async def send_again(
        self, req: Request, conn: HttpConnection, again: _Again
    ) -> None:
        await asyncio.sleep(again.pause())
        await self.handle(req, conn, again)

    def _special(
        self, req: Request, conn: HttpConnection, state: State | None, id_line: bytes
    ) -> None:
        """Everything that is not proxied: the router's own pages, internal paths, 404s."""
        path = req.path
        if path == "/metrics":
            _respond(conn, 200, self.metrics_text(), CONTENT_TYPE_LATEST, id_line)
        elif path == "/_strangler/healthz":
            body = json.dumps({"ok": state is not None, "version": self.version})
            _respond(conn, 200 if state else 503, body.encode(), None, id_line)
        elif path.startswith("/_strangler/") or path == "/_strangler":
            if state and state.config.is_internal(path):
                _error(conn, 404, "not_found", f"No resource at {path}.", id_line)
            elif not self.operator(req.hmap):
                message = (
                    "The /_strangler/ pages need the operator token in "
                    "X-Strangler-Operator-Token (STRANGLER_OPERATOR_TOKEN on the router)."
                )
                _error(conn, 403, "operator_token_required", message, id_line)
            else:
                code, body, ctype = status.render(self, path)
                _respond(conn, code, body, ctype, id_line)
        elif state is None:
            message = (
                f"The router has no config in {self.store.root}; run "
                "`strangler route apply router/config.example.yaml --why ...`."
            )
            _error(conn, 503, "no_config", message, id_line)
        elif state.config.is_internal(path):
            _error(conn, 404, "not_found", f"No resource at {path}.", id_line)
        else:
            message = f"No route for {req.method} {path}."
            _error(conn, 404, "no_route", message, id_line)

    def _choose(
        self, route: Route, hmap: dict[bytes, bytes], config: RouterConfig
    ) -> tuple[str | None, bool]:
        forced = hmap.get(OVERRIDE_HEADER)
        if forced and self.operator(hmap):
            name = forced.decode("latin-1")
            return (name if name in config.backends else None), True
        canary = route.canary
        if canary is not None:
            headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in hmap.items()
            }
            if on_canary(route.name, key_value(canary.key, headers), canary.threshold):
                return canary.to, False
        return route.to, False

    def _principal(self, route: Route, hmap: dict[bytes, bytes]) -> str | None:
        """Whose write this is, by the canary's key (the JWT ``sub`` by default)."""
        key = route.canary.key if route.canary is not None else "user"
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in hmap.items()}
        return key_value(key, headers)

    def _events(
        self, resp: Response, backend: str, principal: str | None
    ) -> tuple[EventRef, ...]:
        """The events the primary reported committing; kept as the principal's fence."""
        for name, value in resp.raw_headers:
            if name.lower() == EVENTS:
                try:
                    refs = tuple(parse_refs(value.decode("latin-1")))
                except BadRefs as exc:
                    log.warning("backend sent bad %s: %s", EVENTS_HEADER, exc)
                    return ()
                if principal is not None:
                    self.shadower.fences.add(backend, principal, refs)
                return refs
        return ()

    def _upstream_block(
        self, req: Request, request_id: str, body: bytes, stream: BodyStream | None
    ) -> bytes:
        memo = req.memo
        forward = memo.forward
        if forward is None:  # the first request of a connection with these headers
            forward = memo.forward = _forward_lines(req)
        block = forward + b"x-request-id: " + request_id.encode() + b"\r\n"
        if stream is None:
            if body or req.method not in SAFE_METHODS:
                block += b"content-length: %d\r\n" % len(body)
        elif b"content-length" in req.hmap:
            block += b"content-length: " + req.hmap[b"content-length"] + b"\r\n"
        else:
            block += b"transfer-encoding: chunked\r\n"
        return block

    async def _attempt(
        self,
        state: State,
        name: str,
        method: str,
        target: bytes,
        block: bytes,
        body: bytes,
        stream: BodyStream | None,
        safe: bool,
        last: bool,
    ) -> Response:
        breaker = self.breakers[name]
        pool = state.pools[name]
        if not breaker.allow():
            UPSTREAM_ERRORS.labels(name, "open").inc()
            raise UpstreamFailure(
                503,
                "circuit_open",
                name,
                f"Backend {name!r} is failing; its circuit breaker is open.",
            )
        try:
            resp = await pool.exchange(
                method.encode(),
                target,
                block,
                body or None,
                stream=None
                if stream is None
                else _stream(stream, state.config.settings.max_body_bytes),
                chunked=stream is not None and b"content-length" not in block,
                retry_stale=safe,
            )
        except UpstreamError as exc:
            raise _failed(breaker, name, exc) from None
        if resp.status >= 500:
            breaker.failure()
            UPSTREAM_ERRORS.labels(name, "5xx").inc()
            if not last:
                resp.release()
                raise UpstreamFailure(
                    resp.status,
                    "backend_error",
                    name,
                    f"Backend {name!r} answered {resp.status}.",
                )
        else:
            breaker.success()
        return resp

    async def _relay(
        self,
        resp: Response,
        conn: HttpConnection,
        extra: bytes,
        captured: _Capture | None,
    ) -> None:
        block = _response_block(resp, extra)
        if resp.complete:
            _relay_whole(resp, conn, block, captured)
            return
        await _relay_streamed(resp, conn, block, captured)

    def _done(
        self,
        route: Route,
        backend: str,
        logged: str,
        req: Request,
        status_code: int,
        started: float,
        request_id: str,
    ) -> None:
        elapsed = time.perf_counter() - started
        method = req.method
        STATS.add(route.name, backend, method, status_code, elapsed)
        if self.access_log is not None:
            self.access_log.add(
                request_id, method, req.path, status_code, logged, self.version, elapsed
            )


class _Exchange:
    """One request on the callback path (``Router.fast``): ``ready`` runs when the
    backend's answer (or failure) is in."""

    __slots__ = (
        "conn",
        "req",
        "request_id",
        "resp",
        "route",
        "router",
        "started",
        "state",
    )

    def __init__(
        self,
        router: Router,
        state: State,
        route: Route,
        req: Request,
        conn: HttpConnection,
        resp: Response | None,
        started: float,
    ) -> None:
        self.router = router
        self.state = state
        self.route = route
        self.req = req
        self.conn = conn
        self.resp = resp
        self.started = started
        self.request_id = router._request_id(req.hmap.get(b"x-request-id"))

    def ready(self) -> None:
        resp = self.resp
        error = resp.error
        settled = resp.settled
        if error is None and not settled:
            return
        resp.notify = None
        conn = self.conn
        req = self.req
        try:
            if error is not None and not (settled and resp.chunks):  # as Response.head
                resp.release()
                if (
                    resp.reused
                    and error.kind == "error"
                    and not resp.got_bytes
                    and req.method in SAFE_METHODS
                ):
                    # A kept-alive connection the backend had just closed: nothing was
                    # processed, so ``handle`` sends it again on another.
                    conn.loop.create_task(conn._run(req))
                    return
                name = self.route.to
                self.fail(_failed(self.router.breakers[name], name, error))
                return
            self.answer()
        except Exception:
            conn.crashed()
            conn.finish(req)

    def answer(self) -> None:
        router, resp, route, conn = self.router, self.resp, self.route, self.conn
        name = route.to
        breaker = router.breakers[name]
        status_code = resp.status
        if status_code >= 500:
            breaker.failure()
            UPSTREAM_ERRORS.labels(name, "5xx").inc()
        else:
            breaker.success()
        req = self.req
        if req.method not in SAFE_METHODS:
            again = router.owner_moving(
                resp, route, name, self.started, self.request_id, None
            )
            if again is not None:
                conn.loop.create_task(
                    conn._run(req, router.send_again(req, conn, again))
                )
                return
        route_line, logged = self.state.label(route, name)
        block = _response_block(
            resp, b"x-request-id: " + self.request_id.encode() + b"\r\n" + route_line
        )
        if not resp.complete:
            # A body still streaming in: the Task path relays it with flow control.
            conn.loop.create_task(conn._run(self.req, self.stream(block, logged)))
            return
        _relay_whole(resp, conn, block, None)
        resp.release()
        router._done(
            route, name, logged, self.req, status_code, self.started, self.request_id
        )
        conn.finish(self.req)

    async def stream(self, block: bytes, logged: str) -> None:
        router, resp, conn = self.router, self.resp, self.conn
        name = self.route.to
        try:
            await _relay_streamed(resp, conn, block, None)
        except UpstreamError as exc:
            _broke_mid_response(name, exc)
            conn.close_after = True
        finally:
            resp.release()
        router._done(
            self.route,
            name,
            logged,
            self.req,
            resp.status,
            self.started,
            self.request_id,
        )

    def fail(self, failure: UpstreamFailure) -> None:
        route_line, logged = self.state.label(self.route, failure.backend)
        id_line = b"x-request-id: " + self.request_id.encode() + b"\r\n"
        _error(
            self.conn, failure.status, failure.kind, str(failure), id_line + route_line
        )
        self.router._done(
            self.route,
            failure.backend,
            logged,
            self.req,
            failure.status,
            self.started,
            self.request_id,
        )
        self.conn.finish(self.req)


class _Again:
    """A write sent once more because its backend answered 409 ``owned_elsewhere``.

    Ownership is moving: a plan's ``writes`` stage (or its rollback) flips the services'
    dual-write modes and the router's routes one after the other, and each side picks its
    change up within about a second, so for a moment a write can reach a backend that no
    longer, or not yet, owns the entity. That backend's guard refused it inside its
    transaction: nothing was written, and sending it again is safe. Each time, the request
    is matched anew (the route's new backend once the router has it, or the same one once
    its mode has flipped), after a pause that doubles from 50 ms up to 0.5 s, until
    ``wait`` seconds have passed; then the 409 goes to the client.
    """

    __slots__ = ("deadline", "request_id", "started", "tries")

    def __init__(self, started: float, request_id: str, wait: float) -> None:
        self.started = started
        self.request_id = request_id
        self.deadline = time.monotonic() + wait
        self.tries = 0

    def more(self) -> bool:
        return time.monotonic() < self.deadline

    def pause(self) -> float:
        left = max(self.deadline - time.monotonic(), 0.0)
        pause = min(0.05 * 2**self.tries, 0.5, left)
        self.tries += 1
        return pause


def _owned_elsewhere(resp: Response) -> bool:
    """Is this whole answer the dual-write guard's 409 ``owned_elsewhere``?"""
    if resp.status != 409 or not resp.complete:
        return False
    body = b"".join(resp.chunks)
    if b"owned_elsewhere" not in body:
        return False
    try:
        return json.loads(body)["error"]["code"] == "owned_elsewhere"
    except (ValueError, KeyError, TypeError):
        return False


def _failed(breaker: Breaker, name: str, exc: UpstreamError) -> UpstreamFailure:
    """Count a failed exchange against the backend and say what the client gets."""
    breaker.failure()
    UPSTREAM_ERRORS.labels(name, exc.kind).inc()
    if exc.kind == "timeout":
        return UpstreamFailure(
            504, "backend_timeout", name, f"Backend {name!r} did not answer in time."
        )
    if exc.kind == "connect":
        return UpstreamFailure(
            502, "backend_unreachable", name, f"Backend {name!r} refused or is down."
        )
    return UpstreamFailure(
        502, "backend_error", name, f"Backend {name!r} failed: {exc}."
    )


def _broke_mid_response(name: str, exc: UpstreamError) -> None:
    UPSTREAM_ERRORS.labels(name, "error").inc()
    log.warning(
        "backend failed mid-response", extra={"backend": name, "error": exc.kind}
    )


def _response_block(resp: Response, extra: bytes) -> bytes:
    """The answer's header lines for the client: the backend's minus hop-by-hop and the
    router's own, plus ``extra``. The lines are passed on as they came, cut out only
    where one of those names starts a line. ``resp.lower`` is the block lower-cased
    behind a leading CRLF, so a match there (from the CRLF before a line to the CRLF
    ending it) spans exactly that line, CRLF included, in the block."""
    block = resp.block
    kept, at = [], 0
    for line in _RESPONSE_STRIPPED_LINE.finditer(resp.lower):
        start, end = line.span()
        kept.append(block[at:start])
        at = end
    if not kept:
        return block + extra
    kept.append(block[at:])
    kept.append(extra)
    return b"".join(kept)


def _forward_lines(req: Request) -> bytes:
    """The client's header lines the backend gets (minus hop-by-hop, the router's own and
    any the Connection header lists) and X-Forwarded-For/Proto/Host."""
    hmap = req.hmap
    stripped = REQUEST_STRIPPED
    listed = hmap.get(b"connection")
    if listed is not None:
        stripped = stripped | {t.strip().lower() for t in listed.split(b",")}
    lines = [
        name + b": " + value + b"\r\n"
        for name, value in req.headers
        if name not in stripped and not name.startswith(b"x-forwarded-")
    ]
    prior = hmap.get(b"x-forwarded-for")
    client = req.client.encode()
    lines.append(
        b"x-forwarded-for: "
        + (prior + b", " + client if prior else client)
        + b"\r\nx-forwarded-proto: "
        + (hmap.get(b"x-forwarded-proto") or b"http")
        + b"\r\n"
    )
    host = hmap.get(b"x-forwarded-host") or hmap.get(b"host")
    if host:
        lines.append(b"x-forwarded-host: " + host + b"\r\n")
    return b"".join(lines)


def _relay_whole(
    resp: Response, conn: HttpConnection, block: bytes, captured: _Capture | None
) -> None:
    """The whole answer is here already (the common case): one write."""
    data = resp.take()
    status_code = resp.status
    if (
        resp.content_length is None
        and not conn.head_only
        and status_code >= 200
        and status_code not in BODYLESS_STATUS
    ):
        block += b"content-length: %d\r\n" % len(data)
    if captured is not None:
        captured.add(data)
    conn.write(
        conn.head(status_code, block, has_length=True)
        + (b"" if conn.head_only else data)
    )
    conn.ended = True


async def _relay_streamed(
    resp: Response, conn: HttpConnection, block: bytes, captured: _Capture | None
) -> None:
    """An answer whose body is still arriving: chunk by chunk, as the client drains."""
    conn.write(
        conn.head(resp.status, block, has_length=resp.content_length is not None)
    )
    while chunk := await resp.read():
        if captured is not None:
            captured.add(chunk)
        conn.body(chunk)
        await conn.drain()
    conn.end()


class _Capture:
    """The primary's body kept for the shadow comparison, up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.overflow = False

    def add(self, chunk: bytes) -> None:
        if self.overflow:
            return
        self.size += len(chunk)
        if self.size > self.limit:
            self.overflow = True
            self.parts = []
        else:
            self.parts.append(chunk)


async def _read_all(stream: BodyStream, limit: int) -> bytes:
    parts = []
    size = 0
    while chunk := await stream.read():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


async def _stream(stream: BodyStream, limit: int):
    size = 0
    while chunk := await stream.read():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        yield chunk


def _error(
    conn: HttpConnection, code: int, kind: str, message: str, extra: bytes
) -> None:
    _respond(conn, code, _error_body(kind, message), None, extra)


def _respond(
    conn: HttpConnection,
    code: int,
    body: bytes,
    content_type: str | None,
    extra: bytes,
) -> None:
    block = (
        (b"content-type: " + content_type.encode() + b"\r\n" if content_type else _JSON)
        + b"content-length: %d\r\n" % len(body)
        + extra
    )
    conn.respond(code, block, body)


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise SystemExit(
            f"router: {name}={raw!r} is not a number of seconds (0 or more)"
        )
    return value


_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}


def _env_switch(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _ON | _OFF:
        return raw in _ON
    raise SystemExit(
        f"router: {name}={os.environ[name]!r} is neither on (1, true, yes, on) nor off "
        "(0, false, no, off)"
    )


def create_app() -> Router:
    """The router ``python -m router`` serves, configured from the environment."""
    from strangler.routing.store import store_dir

    root = Path(__file__).resolve().parent.parent
    rules = os.environ.get("STRANGLER_PLAN_DIR") or str(root / "migrations_plan")
    configure_logging()
    return Router(
        RouteStore(store_dir()),
        operator_token=os.environ.get("STRANGLER_OPERATOR_TOKEN"),
        router_token=os.environ.get("STRANGLER_ROUTER_TOKEN"),
        poll_interval=_env_seconds("ROUTER_POLL_SECONDS", 0.5),
        access_log_enabled=_env_switch("ROUTER_ACCESS_LOG", True),
        rules_dir=Path(rules),
        owner_wait_seconds=_env_seconds(
            "ROUTER_OWNER_WAIT_SECONDS", OWNER_WAIT_SECONDS
        ),
    )
