"""Shadow traffic: after the primary has answered, replay the request to the shadow backend
from a bounded queue, compare both answers with ``strangler.compare`` and append a
``strangler.parity.records.ShadowRecord`` for every compared request, matched or not, so
``strangler parity report --shadow`` shows the real match rate.

Nothing here is on the client's path: a full queue drops the job (and counts it). Unsafe
methods go out only as a dry run (``X-Strangler-Dry-Run: 1`` plus the router's token), which
the service executes in a transaction it rolls back. The dry run is started together with the
primary request (``dispatch_early``), not after its answer: the primary's own write travels to
the service as an event, and a dry run sent after the primary answered would race that event
and see its own write already applied ("already voted"). It is never awaited on the client's
path; only the comparison, queued after the response, waits for it.

A safe request whose answers differ is not counted yet: writes reach a service through the
outbox and the consumer some time after the monolith answered, so a read racing one compares
fresh data with stale. After ``shadow_recheck_seconds`` the request goes again to both
backends; if those answers match the pair *converged* (a match that lagged), otherwise it
is a mismatch. A recheck that cannot run (bound reached, a backend failing, shutdown)
leaves the first mismatch standing, counted as ``unconfirmed`` too.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from router.metrics import SHADOW
from router.upstream import Pool, UpstreamError
from strangler.compare import Comparison, Exchange, compare
from strangler.parity.records import ShadowPair, ShadowRecord
from strangler.routing.schema import SAFE_METHODS

log = logging.getLogger("router.shadow")
DRY_RUN_HEADER = "X-Strangler-Dry-Run"
TOKEN_HEADER = "X-Strangler-Router-Token"  # noqa: S105 - a header name


@dataclass
class ShadowJob:
    route: str
    backend: str
    pool: Pool
    target: bytes
    method: str
    path: str
    headers: bytes  # the header block sent to the primary, lines ending CRLF
    body: bytes
    primary_status: int
    primary_headers: dict[str, str]
    primary_body: bytes
    primary_backend: str = ""
    primary_pool: Pool | None = None
    recheck_seconds: float = 0.0
    first: ShadowPair | None = None  # set on the recheck of a pair that differed
    early: asyncio.Task | None = None  # the dry run started beside the primary request


# Each request ends as one of the first six; "unconfirmed" also marks a mismatch whose
# recheck could not run.
RESULTS = (
    "match",
    "converged",
    "mismatch",
    "error",
    "dropped",
    "skipped",
    "unconfirmed",
)


class ShadowCounts:
    """Per-route counts by result for the status page; converged counts as a match."""

    def __init__(self) -> None:
        self.by_route: dict[str, dict[str, int]] = {}

    def add(self, route: str, backend: str, result: str) -> None:
        SHADOW.labels(route, backend, result).inc()
        counts = self.by_route.setdefault(route, dict.fromkeys(RESULTS, 0))
        counts[result] += 1

    def summary(self) -> dict[str, Any]:
        out = {}
        for route, counts in self.by_route.items():
            matched = counts["match"] + counts["converged"]
            compared = matched + counts["mismatch"]
            rate = matched / compared if compared else None
            out[route] = {**counts, "parity": rate}
        return out


class Shadower:
    def __init__(
        self,
        *,
        queue_size: int,
        workers: int,
        record_path: Path,
        router_token: str | None,
        rules_dir: Path | None,
    ) -> None:
        self.queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=queue_size)
        self.workers = workers
        self.record_path = record_path
        self.router_token = router_token
        self.rules_dir = rules_dir
        self.counts = ShadowCounts()
        self._tasks: list[asyncio.Task] = []
        self._rules: dict[str, Any] = {}
        # Rechecks waiting for their time, bounded like the queue.
        self._waiting: dict[int, tuple[asyncio.TimerHandle, ShadowJob]] = {}
        self._next_wait = 0
        self._early = 0  # dry runs started beside their primary and not finished yet

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for handle, job in self._waiting.values():
            handle.cancel()
            self._unconfirmed(job)
        self._waiting.clear()

    def offer(self, job: ShadowJob) -> None:
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.counts.add(job.route, job.backend, "dropped")

    def skip(self, route: str, backend: str) -> None:
        self.counts.add(route, backend, "skipped")

    def dispatch_early(
        self, pool: Pool, method: str, target: bytes, headers: bytes, body: bytes
    ) -> asyncio.Task | None:
        """Start an unsafe request's dry run on the shadow backend now, beside the primary.

        Bounded like the queue: past ``queue.maxsize`` dry runs in flight it returns None
        and the job falls back to sending the dry run after the primary answered.
        """
        if not self.router_token or self._early >= self.queue.maxsize:
            return None
        headers += (
            f"{DRY_RUN_HEADER}: 1\r\n{TOKEN_HEADER}: {self.router_token}\r\n".encode()
        )
        self._early += 1
        task = asyncio.create_task(
            _exchange(pool, method, target, headers, body, retry_stale=False)
        )
        task.add_done_callback(self._early_done)
        return task

    def _early_done(self, task: asyncio.Task) -> None:
        self._early -= 1
        if not task.cancelled():
            task.exception()  # retrieved here; the job reports it when it awaits

    @staticmethod
    def abandon(task: asyncio.Task | None) -> None:
        """The primary failed or its answer was too large to compare: stop the dry run."""
        if task is not None:
            task.cancel()

    async def drain(self) -> None:
        await self.queue.join()

    def _rules_for(self, backend: str):
        if backend not in self._rules:
            from strangler.compare import RulesError, load_rules

            path = self.rules_dir / f"{backend}.yaml" if self.rules_dir else None
            try:
                rules = load_rules(path) if path and path.exists() else None
            except RulesError as exc:
                log.error("shadow noise rules refused, comparing without them: %s", exc)
                rules = None
            self._rules[backend] = rules
        return self._rules[backend]

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self._run(job)
            except Exception:
                log.exception("shadow job failed", extra={"route": job.route})
                self.counts.add(job.route, job.backend, "error")
            finally:
                self.queue.task_done()

    async def _run(self, job: ShadowJob) -> None:
        if job.first is not None:
            await self._recheck(job)
            return
        headers = job.headers
        safe = job.method in SAFE_METHODS
        if not safe:
            if not self.router_token:
                self.counts.add(job.route, job.backend, "skipped")
                return
            headers += f"{DRY_RUN_HEADER}: 1\r\n{TOKEN_HEADER}: {self.router_token}\r\n".encode()
        try:
            if job.early is not None:
                candidate = await job.early
            else:
                candidate = await _fetch(job.pool, job, headers, retry_stale=safe)
        except UpstreamError as exc:
            self.counts.add(job.route, job.backend, "error")
            log.warning(
                "shadow request failed: %s",
                exc.kind,
                extra={"route": job.route, "backend": job.backend},
            )
            return
        primary = Exchange(job.primary_status, job.primary_headers, job.primary_body)
        result = self._compare(job, primary, candidate)
        if (
            not result.matched
            and safe
            and job.recheck_seconds > 0
            and job.primary_pool is not None
        ):
            self._schedule(job, ShadowPair(primary, candidate, result))
            return
        self.counts.add(
            job.route, job.backend, "match" if result.matched else "mismatch"
        )
        self._record(job, primary, candidate, result)

    def _compare(
        self, job: ShadowJob, primary: Exchange, candidate: Exchange
    ) -> Comparison:
        return compare(
            primary,
            candidate,
            method=job.method,
            path=job.target.decode("latin-1"),
            rules=self._rules_for(job.backend),
        )

    def _schedule(self, job: ShadowJob, first: ShadowPair) -> None:
        job = replace(job, first=first)
        if len(self._waiting) >= self.queue.maxsize:
            self._unconfirmed(job)
            return
        key = self._next_wait
        self._next_wait += 1
        handle = asyncio.get_running_loop().call_later(
            job.recheck_seconds, self._due, key
        )
        self._waiting[key] = (handle, job)

    def _due(self, key: int) -> None:
        _, job = self._waiting.pop(key)
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self._unconfirmed(job)

    async def _recheck(self, job: ShadowJob) -> None:
        """The same request to both backends again, now that the event lag has passed."""
        assert job.first is not None and job.primary_pool is not None
        primary, candidate = await asyncio.gather(
            _fetch(job.primary_pool, job, job.headers, retry_stale=True),
            _fetch(job.pool, job, job.headers, retry_stale=True),
            return_exceptions=True,
        )
        for answer in (primary, candidate):
            if isinstance(answer, BaseException):
                if not isinstance(answer, UpstreamError):
                    raise answer
                log.warning(
                    "shadow recheck failed: %s",
                    answer.kind,
                    extra={"route": job.route, "backend": job.backend},
                )
                self._unconfirmed(job)
                return
        result = self._compare(job, primary, candidate)
        self.counts.add(
            job.route, job.backend, "converged" if result.matched else "mismatch"
        )
        self._record(job, primary, candidate, result)

    def _unconfirmed(self, job: ShadowJob) -> None:
        """A recheck that cannot run: the first comparison's mismatch stands."""
        first = job.first
        assert first is not None and first.comparison is not None
        self.counts.add(job.route, job.backend, "unconfirmed")
        self.counts.add(job.route, job.backend, "mismatch")
        self._record(
            replace(job, first=None), first.primary, first.shadow, first.comparison
        )

    def _record(
        self, job: ShadowJob, primary: Exchange, candidate: Exchange, result: Comparison
    ) -> None:
        record = ShadowRecord(
            route=job.route,
            method=job.method,
            path=job.target.decode("latin-1"),
            primary=primary,
            shadow=candidate,
            primary_backend=job.primary_backend,
            shadow_backend=job.backend,
            comparison=result,
            request_headers=_header_block(job.headers),
            dry_run=job.method not in SAFE_METHODS,
            first=job.first,
        )
        line = record.to_json() + "\n"
        # One write() on an O_APPEND file keeps lines whole across router workers.
        fd = os.open(self.record_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


async def _fetch(
    pool: Pool, job: ShadowJob, headers: bytes, *, retry_stale: bool
) -> Exchange:
    return await _exchange(
        pool, job.method, job.target, headers, job.body, retry_stale=retry_stale
    )


async def _exchange(
    pool: Pool,
    method: str,
    target: bytes,
    headers: bytes,
    body: bytes,
    *,
    retry_stale: bool,
) -> Exchange:
    resp = await pool.exchange(
        method.encode(), target, headers, body or None, retry_stale=retry_stale
    )
    try:
        body = await resp.read_all()
    finally:
        resp.release()
    return Exchange(
        resp.status,
        {k.decode("latin-1"): v.decode("latin-1") for k, v in resp.raw_headers},
        body,
    )


def _header_block(block: bytes) -> dict[str, str]:
    """The request's header block (lines ending CRLF) as a dict; repeats joined."""
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            name, value = name.strip(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers
