"""Shadow traffic: after the primary has answered, replay the request to the shadow backend
from a bounded queue, compare both answers with ``strangler.compare`` and append a
``strangler.parity.records.ShadowRecord`` for every compared request, matched or not, so
``strangler parity report --shadow`` shows the real match rate.

Nothing here is on the client's path: a full queue drops the job (and counts it). Unsafe
methods go out only as a dry run (``X-Strangler-Dry-Run: 1`` plus the router's token), which
the service executes in a transaction it rolls back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.metrics import SHADOW
from router.upstream import Pool, UpstreamError
from strangler.compare import Comparison, Exchange, compare
from strangler.parity.records import ShadowRecord
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


class ShadowCounts:
    """Per-route match/mismatch/error/dropped counts for the status page."""

    def __init__(self) -> None:
        self.by_route: dict[str, dict[str, int]] = {}

    def add(self, route: str, backend: str, result: str) -> None:
        SHADOW.labels(route, backend, result).inc()
        counts = self.by_route.setdefault(
            route,
            {"match": 0, "mismatch": 0, "error": 0, "dropped": 0, "skipped": 0},
        )
        counts[result] += 1

    def summary(self) -> dict[str, Any]:
        out = {}
        for route, counts in self.by_route.items():
            compared = counts["match"] + counts["mismatch"]
            rate = counts["match"] / compared if compared else None
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

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

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
        headers = job.headers
        safe = job.method in SAFE_METHODS
        if not safe:
            if not self.router_token:
                self.counts.add(job.route, job.backend, "skipped")
                return
            headers += f"{DRY_RUN_HEADER}: 1\r\n{TOKEN_HEADER}: {self.router_token}\r\n".encode()
        try:
            resp = await job.pool.exchange(
                job.method.encode(),
                job.target,
                headers,
                job.body or None,
                retry_stale=safe,
            )
            try:
                body = await resp.read_all()
            finally:
                resp.release()
            candidate = Exchange(
                resp.status,
                {k.decode("latin-1"): v.decode("latin-1") for k, v in resp.raw_headers},
                body,
            )
        except UpstreamError as exc:
            self.counts.add(job.route, job.backend, "error")
            log.warning(
                "shadow request failed: %s",
                exc.kind,
                extra={"route": job.route, "backend": job.backend},
            )
            return
        primary = Exchange(job.primary_status, job.primary_headers, job.primary_body)
        result = compare(
            primary,
            candidate,
            method=job.method,
            path=job.target.decode("latin-1"),
            rules=self._rules_for(job.backend),
        )
        self.counts.add(
            job.route, job.backend, "match" if result.matched else "mismatch"
        )
        self._record(job, primary, candidate, result)

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
        )
        line = record.to_json() + "\n"
        # One write() on an O_APPEND file keeps lines whole across router workers.
        fd = os.open(self.record_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _header_block(block: bytes) -> dict[str, str]:
    """The request's header block (lines ending CRLF) as a dict; repeats joined."""
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            name, value = name.strip(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers
