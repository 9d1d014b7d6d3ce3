"""Shadow traffic: after the primary has answered, replay the request to the shadow backend
from a bounded queue, compare both answers with ``strangler.compare`` and append a
``strangler.parity.records.ShadowRecord`` for every compared request, matched or not, so
``strangler parity report --shadow`` shows the real match rate.

Nothing here is on the client's path: a full queue drops the job (and counts it). Unsafe
methods go out only as a dry run (``X-Strangler-Dry-Run: 1`` plus the router's token), which
the service executes in a transaction it rolls back, after the primary answered and under a
causal fence (``router.fences``): ``X-Strangler-Fence`` names the events of the same
principal's earlier writes, which the service waits for, and ``X-Strangler-Overtake`` those
of the primary's own answer; a service that already applied them would meet the primary's
own write. A dry run the service did not execute (``fence-timeout``, ``overtaken``) is not
comparable: counted apart, neither a match nor a mismatch, and not recorded.

A safe request whose answers differ is not counted yet: writes reach a service through the
outbox and the consumer some time after the monolith answered, so a read racing one compares
fresh data with stale. After ``shadow_recheck_seconds`` the request goes again to both
backends; if those answers match the pair *converged* (a match that lagged). While users
write, a recheck can race a newer write in its turn, so a pair that still differs is
rechecked again, up to ``RECHECKS`` times in all; one that differs every time is a
mismatch. A recheck that cannot run (bound reached, a backend failing, shutdown)
leaves the first mismatch standing, counted as ``unconfirmed`` too.

A write is rechecked the same way only when its primary refused it (a 4xx) and reported no
event: it changed nothing there, so the same request can be asked again of both sides, as
a dry run on each (the primary's backend must run ``strangler.web.dryrun``), the shadow's
fenced on the principal's writes known by then. That covers a dry run that met a service
behind on an earlier write the router did not fence (one made before the route was
shadowed): the monolith answers 409 ``already_voted``, the lagging service 201, and once
the event arrived both answer 409. A write the primary carried out is never rechecked:
asked again, the primary would meet its own write.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from router.fences import FenceBook, Write, completed, merged
from router.metrics import SHADOW
from router.upstream import Pool, UpstreamError
from strangler.compare import Comparison, Exchange, compare
from strangler.events.refs import (
    APPLIED_HEADER,
    EXECUTED,
    FENCE_HEADER,
    FENCE_TIMEOUT,
    OUTCOME_HEADER,
    OVERTAKE_HEADER,
    OVERTAKEN,
    BadRefs,
    EventRef,
    format_refs,
    parse_refs,
)
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
    rechecked: int = 0  # rechecks already done
    principal: str | None = None  # whose earlier writes fence this dry run
    fence: tuple[EventRef, ...] = ()
    # the principal's writes still in flight when the fence was taken: their events join it
    pending: tuple[Write, ...] = ()
    overtake: tuple[EventRef, ...] = ()  # the events of the primary's own answer
    primary_dry_run: bool = False  # the primary's backend runs strangler.web.dryrun

    def recheckable(self) -> bool:
        """Whether asking both backends again compares what the first asking did: always
        for a read; for a write, only one the primary refused without an event, and as a
        dry run on both sides."""
        if self.recheck_seconds <= 0 or self.primary_pool is None:
            return False
        if self.method in SAFE_METHODS:
            return True
        return (
            self.primary_dry_run
            and not self.overtake
            and 400 <= self.primary_status < 500
        )


# Each request ends as one of the first eight; "unconfirmed" also marks a mismatch whose
# recheck could not run.
NOT_COMPARABLE = (FENCE_TIMEOUT, OVERTAKEN)
# Each recheck of a read that differed races the writes in flight at its own moment; a
# real difference persists through all of them.
RECHECKS = 3
RESULTS = (
    "match",
    "converged",
    "mismatch",
    *NOT_COMPARABLE,
    "error",
    "dropped",
    "skipped",
    "unconfirmed",
)


class ShadowCounts:
    """Per-route counts by result for the status page; converged counts as a match, and
    dry runs the service did not execute count as not comparable, outside the rate."""

    def __init__(self) -> None:
        self.by_route: dict[str, dict[str, int]] = {}

    def add(self, route: str, backend: str, result: str) -> None:
        SHADOW.labels(route, backend, result).inc()
        counts = self.by_route.setdefault(route, dict.fromkeys(RESULTS, 0))
        counts[result] += 1

    def summary(self) -> dict[str, Any]:
        return summarize(self.by_route)


def summarize(by_route: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Per route: the counts by result, how many were compared, and the parity rate."""
    out = {}
    for route, counts in by_route.items():
        counts = {**dict.fromkeys(RESULTS, 0), **counts}
        matched = counts["match"] + counts["converged"]
        compared = matched + counts["mismatch"]
        rate = matched / compared if compared else None
        out[route] = {
            **counts,
            "compared": compared,
            "not_comparable": sum(counts[r] for r in NOT_COMPARABLE),
            "parity": rate,
        }
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
        self.fences = FenceBook()
        self._tasks: list[asyncio.Task] = []
        self._rules: dict[str, Any] = {}
        # Rechecks waiting for their time, bounded like the queue.
        self._waiting: dict[int, tuple[asyncio.TimerHandle, ShadowJob]] = {}
        self._next_wait = 0

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
            if job.pending:
                job.fence = await completed(job.fence, job.pending)
                job.pending = ()
            headers += _dry_run_lines(self.router_token, job.fence, job.overtake)
        try:
            candidate = await _fetch(job.pool, job, headers, retry_stale=safe)
        except UpstreamError as exc:
            self.counts.add(job.route, job.backend, "error")
            log.warning(
                "shadow request failed: %s",
                exc.kind,
                extra={"route": job.route, "backend": job.backend},
            )
            return
        if not safe and not self._executed(job, candidate):
            return
        primary = Exchange(job.primary_status, job.primary_headers, job.primary_body)
        result = self._compare(job, primary, candidate)
        if not result.matched and job.recheckable():
            self._schedule(job, ShadowPair(primary, candidate, result))
            return
        self.counts.add(
            job.route, job.backend, "match" if result.matched else "mismatch"
        )
        self._record(job, primary, candidate, result)

    def _executed(self, job: ShadowJob, candidate: Exchange) -> bool:
        """Whether the dry run ran; forgets the fences it found applied either way."""
        self._forget_applied(job, candidate)
        outcome = _header(candidate.headers, OUTCOME_HEADER)
        if outcome in NOT_COMPARABLE:
            self.counts.add(job.route, job.backend, outcome)
            return False
        return True

    def _forget_applied(self, job: ShadowJob, candidate: Exchange) -> None:
        if job.principal is None:
            return
        try:
            applied = parse_refs(_header(candidate.headers, APPLIED_HEADER))
        except BadRefs as exc:
            log.warning("shadow backend sent bad applied refs: %s", exc)
            applied = []
        self.fences.forget(job.backend, job.principal, applied)

    def _both_executed(
        self, job: ShadowJob, primary: Exchange, candidate: Exchange
    ) -> bool:
        """Whether both dry runs of a write's recheck ran (and forget the fences the
        shadow found applied); a side that did not (its fence timed out, a backend that
        refused the dry run) leaves nothing to compare."""
        self._forget_applied(job, candidate)
        ran = all(
            _header(a.headers, OUTCOME_HEADER) == EXECUTED for a in (primary, candidate)
        )
        if not ran:
            log.warning(
                "shadow recheck of a write not executed: primary %s, shadow %s",
                _header(primary.headers, OUTCOME_HEADER) or primary.status,
                _header(candidate.headers, OUTCOME_HEADER) or candidate.status,
                extra={"route": job.route, "backend": job.backend},
            )
        return ran

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
        safe = job.method in SAFE_METHODS
        primary_headers = shadow_headers = job.headers
        if not safe:
            # Both sides as a dry run; only the shadow waits for the principal's writes.
            known = (
                self.fences.fence(job.backend, job.principal)
                if job.principal is not None
                else ()
            )
            fence = merged(job.fence, known)
            primary_headers += _dry_run_lines(self.router_token)
            shadow_headers += _dry_run_lines(self.router_token, fence)
        primary, candidate = await asyncio.gather(
            _fetch(job.primary_pool, job, primary_headers, retry_stale=safe),
            _fetch(job.pool, job, shadow_headers, retry_stale=safe),
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
        if not safe and not self._both_executed(job, primary, candidate):
            self._unconfirmed(job)
            return
        result = self._compare(job, primary, candidate)
        if not result.matched and job.rechecked + 1 < RECHECKS:
            self._schedule(replace(job, rechecked=job.rechecked + 1), job.first)
            return
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


def _dry_run_lines(
    token: str,
    fence: tuple[EventRef, ...] = (),
    overtake: tuple[EventRef, ...] = (),
) -> bytes:
    lines = f"{DRY_RUN_HEADER}: 1\r\n{TOKEN_HEADER}: {token}\r\n"
    if fence:
        lines += f"{FENCE_HEADER}: {format_refs(fence)}\r\n"
    if overtake:
        lines += f"{OVERTAKE_HEADER}: {format_refs(overtake)}\r\n"
    return lines.encode()


def _header(headers: dict[str, str], name: str) -> str | None:
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower:
            return value
    return None


def _header_block(block: bytes) -> dict[str, str]:
    """The request's header block (lines ending CRLF) as a dict; repeats joined."""
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            name, value = name.strip(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers
