"""The router's ASGI app: match a route, pick the backend (canary, override, breaker), proxy
the request with a keep-alive aiohttp pool per backend, fall back for safe methods, hand the
request to the shadower, and answer ``/metrics`` and the operator's ``/_strangler/`` pages.

Config comes from the versioned store (``strangler.routing.store``), polled every half
second; a new version is validated fully and swapped in with one assignment, so a request
is routed wholly by the version it started with. An invalid version is refused and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from router import status
from router.breaker import Breaker
from router.metrics import (
    CONFIG_REJECTED,
    CONFIG_VERSION,
    FALLBACKS,
    LATENCY,
    REGISTRY,
    REQUESTS,
    UPSTREAM_ERRORS,
)
from router.shadow import DRY_RUN_HEADER, TOKEN_HEADER, Shadower, ShadowJob
from strangler.routing.canary import key_value, on_canary
from strangler.routing.schema import (
    SAFE_METHODS,
    Backend,
    ConfigError,
    Route,
    RouterConfig,
    Settings,
    load_config,
)
from strangler.routing.store import RouteStore, StoreError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("router")
access_log = logging.getLogger("router.access")

ROUTE_HEADER = b"x-strangler-route"
OVERRIDE_HEADER = "x-strangler-backend"
OPERATOR_HEADER = "x-strangler-operator-token"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Never forwarded from a client: only the router itself may ask for a dry run.
CLIENT_STRIPPED = frozenset(
    {
        DRY_RUN_HEADER.lower(),
        TOKEN_HEADER.lower(),
        OVERRIDE_HEADER,
        OPERATOR_HEADER,
    }
)
RESPONSE_STRIPPED = frozenset(HOP_BY_HOP - {"content-length"})
READ_CHUNK = 64 * 1024
_SAFE_ID = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@/+=-"
)


class UpstreamFailure(Exception):
    def __init__(self, status: int, kind: str, backend: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.backend = backend


class Pool:
    """One backend's keep-alive connection pool and timeouts."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        connector = aiohttp.TCPConnector(
            limit=backend.max_connections,
            keepalive_timeout=1.5,
            ttl_dns_cache=300,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=backend.connect_timeout,
                sock_read=backend.read_timeout,
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        await self.session.close()


@dataclass
class State:
    version: int
    config: RouterConfig
    pools: dict[str, Pool]
    loaded_at: float = field(default_factory=time.time)


def _json(status_code: int, code: str, message: str) -> tuple[int, bytes]:
    return status_code, json.dumps(
        {"error": {"code": code, "message": message}}
    ).encode()


def _request_id(value: str | None) -> str:
    if value and len(value) <= 128 and set(value) <= _SAFE_ID:
        return value
    return uuid.uuid4().hex


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
    ) -> None:
        self.store = store
        self.operator_token = operator_token or None
        self.router_token = router_token or None
        self.poll_interval = poll_interval
        self.access_log_enabled = access_log_enabled
        self.rules_dir = rules_dir
        self.state: State | None = None
        self.breakers: dict[str, Breaker] = {}
        self.last_error: dict[str, Any] | None = None
        self.rejected_version: int | None = None
        self.counts: dict[tuple[str, str], int] = {}
        self._series: dict[tuple, tuple[Any, Any]] = {}
        self.shadower: Shadower | None = None
        self._poller: asyncio.Task | None = None
        self._retired: set[asyncio.Task] = set()

    # --- lifecycle ------------------------------------------------------------------------

    async def startup(self) -> None:
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

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.reload()
            except Exception:
                log.exception("config reload failed")

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

    # --- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def operator(self, headers: dict[str, str]) -> bool:
        given = headers.get(OPERATOR_HEADER)
        if not given:
            auth = headers.get("authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        return bool(
            self.operator_token
            and given
            and hmac.compare_digest(given.encode(), self.operator_token.encode())
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        headers: dict[str, str] = {}
        raw_headers: list[tuple[str, str]] = []
        for k, v in scope["headers"]:
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            raw_headers.append((name, value))
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request_id = _request_id(headers.get("x-request-id"))
        extra = [(b"x-request-id", request_id.encode())]

        if path == "/metrics":
            await _respond(
                send, 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST, extra
            )
            return
        if path == "/_strangler/healthz":
            body = json.dumps({"ok": self.state is not None, "version": self.version})
            await _respond(send, 200 if self.state else 503, body.encode(), None, extra)
            return
        state = self.state
        if path.startswith("/_strangler/") or path == "/_strangler":
            if state and state.config.is_internal(path):
                await _error(
                    send, *_json(404, "not_found", f"No resource at {path}."), extra
                )
            elif not self.operator(headers):
                code, body = _json(
                    403,
                    "operator_token_required",
                    "The /_strangler/ pages need the operator token in "
                    "X-Strangler-Operator-Token (STRANGLER_OPERATOR_TOKEN on the router).",
                )
                await _error(send, code, body, extra)
            else:
                code, body, ctype = status.render(self, path)
                await _respond(send, code, body, ctype, extra)
            return
        if state is None:
            await _error(
                send,
                *_json(
                    503,
                    "no_config",
                    f"The router has no config in {self.store.root}; run "
                    "`strangler route apply router/config.example.yaml --why ...`.",
                ),
                extra,
            )
            return
        config = state.config
        if config.is_internal(path):
            await _error(
                send, *_json(404, "not_found", f"No resource at {path}."), extra
            )
            return
        route = config.match(method, path)
        if route is None:
            await _error(
                send, *_json(404, "no_route", f"No route for {method} {path}."), extra
            )
            return

        backend, forced = self._choose(route, headers, config)
        if backend is None:
            await _error(
                send,
                *_json(
                    400,
                    "unknown_backend",
                    f"X-Strangler-Backend names {headers.get(OVERRIDE_HEADER)!r}; "
                    f"backends: {', '.join(sorted(config.backends))}.",
                ),
                extra,
            )
            return
        shadow = route.shadow
        shadow_on = (
            shadow is not None
            and self.shadower is not None
            and (shadow.percent >= 100 or random.random() * 100 < shadow.percent)  # noqa: S311
        )
        safe = method in SAFE_METHODS
        limit = config.settings.max_body_bytes
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            code, message = _json(
                413, "too_large", f"Request body over the {limit}-byte limit."
            )
            # The unread body would be taken for the next request on this connection.
            await _error(send, code, message, [*extra, (b"connection", b"close")])
            return
        message = await receive()
        body: bytes | Any = message.get("body", b"")
        if message.get("more_body"):
            if shadow_on or (safe and route.fallback):
                try:
                    body = await _read_rest(receive, body, limit)
                except _TooLarge:
                    await _error(
                        send,
                        *_json(
                            413,
                            "too_large",
                            f"Request body over the {limit}-byte limit.",
                        ),
                        extra,
                    )
                    return
            else:
                body = _stream_rest(receive, body, limit)

        upstream_headers = self._upstream_headers(
            scope, raw_headers, headers, request_id
        )
        target = scope.get("raw_path") or path.encode()
        query = scope.get("query_string") or b""
        path_qs = (target + (b"?" + query if query else b"")).decode("latin-1")

        candidates = [backend]
        if safe and route.fallback and route.fallback != backend and not forced:
            candidates.append(route.fallback)
        served_by = backend
        failure: UpstreamFailure | None = None
        resp: aiohttp.ClientResponse | None = None
        for i, name in enumerate(candidates):
            last = i == len(candidates) - 1
            try:
                resp = await self._attempt(
                    state, name, method, path_qs, upstream_headers, body, last
                )
            except UpstreamFailure as exc:
                failure = exc
                continue
            served_by = name
            if i > 0:
                FALLBACKS.labels(route.name, candidates[0], name).inc()
            break

        route_header = (
            f"{route.name}; backend={served_by}; version={state.version}".encode()
        )
        extra.append((ROUTE_HEADER, route_header))
        if resp is None:
            assert failure is not None
            route_header = f"{route.name}; backend={failure.backend}; version={state.version}".encode()
            extra[-1] = (ROUTE_HEADER, route_header)
            await _error(
                send, *_json(failure.status, failure.kind, str(failure)), extra
            )
            self._done(
                route,
                failure.backend,
                method,
                path,
                failure.status,
                started,
                request_id,
            )
            return

        keep = shadow_on and isinstance(body, bytes)
        captured = _Capture(config.settings.shadow_max_body_bytes) if keep else None
        status_code = resp.status
        try:
            await self._relay(resp, send, extra, captured)
        except (aiohttp.ClientError, TimeoutError) as exc:
            UPSTREAM_ERRORS.labels(served_by, "error").inc()
            log.warning(
                "backend failed mid-response",
                extra={"backend": served_by, "error": type(exc).__name__},
            )
            raise
        finally:
            resp.release()
        self._done(route, served_by, method, path, status_code, started, request_id)
        if shadow is not None and shadow_on:
            if captured is None or captured.overflow:
                self.shadower.skip(route.name, shadow.to)
            else:
                self.shadower.offer(
                    ShadowJob(
                        route=route.name,
                        backend=shadow.to,
                        session=state.pools[shadow.to].session,
                        url=state.pools[shadow.to].backend.url + path_qs,
                        method=method,
                        path=path,
                        headers=upstream_headers,
                        body=body,
                        primary_status=status_code,
                        primary_headers=dict(resp.headers),
                        primary_body=b"".join(captured.parts),
                    )
                )

    @property
    def version(self) -> int | None:
        return self.state.version if self.state else None

    def _choose(
        self, route: Route, headers: dict[str, str], config: RouterConfig
    ) -> tuple[str | None, bool]:
        forced = headers.get(OVERRIDE_HEADER)
        if forced and self.operator(headers):
            return (forced if forced in config.backends else None), True
        canary = route.canary
        if canary is not None and on_canary(
            route.name, key_value(canary.key, headers), canary.threshold
        ):
            return canary.to, False
        return route.to, False

    def _upstream_headers(
        self,
        scope: Scope,
        raw_headers: list[tuple[str, str]],
        headers: dict[str, str],
        request_id: str,
    ) -> list[tuple[str, str]]:
        connection_listed = {
            t.strip().lower()
            for t in headers.get("connection", "").split(",")
            if t.strip()
        }
        out = [
            (k, v)
            for k, v in raw_headers
            if k not in HOP_BY_HOP
            and k not in CLIENT_STRIPPED
            and k not in connection_listed
            and not k.startswith("x-forwarded-")
            and k != "x-request-id"
        ]
        client = scope.get("client")
        client_ip = client[0] if client else ""
        prior = headers.get("x-forwarded-for")
        out.append(("X-Forwarded-For", f"{prior}, {client_ip}" if prior else client_ip))
        out.append(
            (
                "X-Forwarded-Proto",
                headers.get("x-forwarded-proto") or scope.get("scheme", "http"),
            )
        )
        host = headers.get("x-forwarded-host") or headers.get("host")
        if host:
            out.append(("X-Forwarded-Host", host))
        out.append(("X-Request-ID", request_id))
        if "content-length" in headers:
            out.append(("Content-Length", headers["content-length"]))
        return out

    async def _attempt(
        self,
        state: State,
        name: str,
        method: str,
        path_qs: str,
        headers: list[tuple[str, str]],
        body: Any,
        last: bool,
    ) -> aiohttp.ClientResponse:
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
            resp = await pool.session.request(
                method,
                URL(pool.backend.url + path_qs, encoded=True),
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
            )
        except TimeoutError:
            breaker.failure()
            UPSTREAM_ERRORS.labels(name, "timeout").inc()
            raise UpstreamFailure(
                504,
                "backend_timeout",
                name,
                f"Backend {name!r} did not answer in time.",
            ) from None
        except aiohttp.ClientConnectorError:
            breaker.failure()
            UPSTREAM_ERRORS.labels(name, "connect").inc()
            raise UpstreamFailure(
                502,
                "backend_unreachable",
                name,
                f"Backend {name!r} refused or is down.",
            ) from None
        except aiohttp.ClientError as exc:
            breaker.failure()
            UPSTREAM_ERRORS.labels(name, "error").inc()
            raise UpstreamFailure(
                502,
                "backend_error",
                name,
                f"Backend {name!r} failed: {type(exc).__name__}.",
            ) from None
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
        resp: aiohttp.ClientResponse,
        send: Send,
        extra: list[tuple[bytes, bytes]],
        captured: _Capture | None,
    ) -> None:
        out_headers = [
            (k, v)
            for k, v in resp.raw_headers
            if k.lower().decode("latin-1") not in RESPONSE_STRIPPED
            and k.lower() not in (b"x-request-id", ROUTE_HEADER)
        ]
        out_headers.extend(extra)
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": out_headers,
            }
        )
        content = resp.content
        while True:
            chunk = await content.readany()
            if not chunk:
                break
            if captured is not None:
                captured.add(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _done(
        self,
        route: Route,
        backend: str,
        method: str,
        path: str,
        status_code: int,
        started: float,
        request_id: str,
    ) -> None:
        elapsed = time.perf_counter() - started
        key = (route.name, backend)
        series = self._series.get((key, method, status_code))
        if series is None:
            # labels() hashes and locks on every call; the children never change.
            series = self._series[(key, method, status_code)] = (
                REQUESTS.labels(route.name, backend, method, str(status_code)),
                LATENCY.labels(route.name, backend),
            )
        series[0].inc()
        series[1].observe(elapsed)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.access_log_enabled:
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "status": status_code,
                    "route": route.name,
                    "backend": backend,
                    "version": self.version,
                    "ms": round(elapsed * 1000, 2),
                },
            )


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


class _TooLarge(Exception):
    pass


async def _read_rest(receive: Receive, first: bytes, limit: int) -> bytes:
    parts = [first]
    size = len(first)
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


async def _stream_rest(receive: Receive, first: bytes, limit: int):
    size = len(first)
    if first:
        yield first
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise aiohttp.ClientPayloadError("request body over the size limit")
        if chunk:
            yield chunk
        if not message.get("more_body"):
            return


async def _error(send: Send, code: int, body: bytes, extra: list) -> None:
    await _respond(send, code, body, "application/json", extra)


async def _respond(
    send: Send, code: int, body: bytes, content_type: str | None, extra: list
) -> None:
    headers = [
        (b"content-type", (content_type or "application/json").encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app() -> Router:
    """The app ``python -m router`` serves, configured from the environment."""
    from strangler.routing.store import store_dir

    root = Path(__file__).resolve().parent.parent
    rules = os.environ.get("STRANGLER_PLAN_DIR") or str(root / "migrations_plan")
    configure_logging()
    return Router(
        RouteStore(store_dir()),
        operator_token=os.environ.get("STRANGLER_OPERATOR_TOKEN"),
        router_token=os.environ.get("STRANGLER_ROUTER_TOKEN"),
        poll_interval=float(os.environ.get("ROUTER_POLL_SECONDS", "0.5")),
        access_log_enabled=os.environ.get("ROUTER_ACCESS_LOG", "1")
        not in {"0", "false", "no"},
        rules_dir=Path(rules),
    )


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def configure_logging() -> None:
    root = logging.getLogger("router")
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonLines())
    root.addHandler(handler)
    root.setLevel(os.environ.get("ROUTER_LOG_LEVEL", "INFO").upper())
    root.propagate = False
