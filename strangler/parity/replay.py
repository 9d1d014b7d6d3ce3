"""The replay runner: sends each corpus request to primary, candidate (and baseline),
compares the answers, and appends each result to a state file so a stopped run resumes.

Unsafe methods go out as dry runs (``X-Strangler-Dry-Run: 1`` with the router token) that
the services execute in a transaction they roll back, unless ``allow_writes`` is set for
disposable databases; then each write runs alone, in corpus order, so that reads around
it see the same state on every backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from strangler.compare import Comparison, Difference, Exchange, RuleSet, compare
from strangler.parity.corpus import IDENTITY_PREFIX, CorpusRequest
from strangler.parity.results import PairResult

DRY_RUN_HEADER = "X-Strangler-Dry-Run"
ROUTER_TOKEN_HEADER = "X-Strangler-Router-Token"  # noqa: S105 (a header name)
STATE_VERSION = 1


class StateError(ValueError):
    """A state file that belongs to another run or cannot be read."""


@dataclass
class ReplayConfig:
    primary: str
    candidate: str
    baseline: str | None = None
    rules: RuleSet = field(default_factory=RuleSet)
    concurrency: int = 8
    allow_writes: bool = False
    tokens: Mapping[str, str] = field(default_factory=dict)
    router_token: str = ""
    host: str | None = None
    timeout: float = 30.0


def corpus_digest(requests_: Sequence[CorpusRequest]) -> str:
    digest = hashlib.sha256()
    for request in requests_:
        digest.update(json.dumps(request.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()


class StateFile:
    """Append-only JSONL: a header naming the run, then one line per finished request."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None

    def load(self, *, check: bool = True) -> list[PairResult]:
        """Results saved so far; ``check`` refuses a state file of another run."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        results = []
        lines = self.path.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            try:
                data = json.loads(line)
            except ValueError:
                if number == len(lines):
                    break  # the last line was cut by a crash: that request runs again
                raise StateError(f"{self.path}:{number}: not valid JSON") from None
            if number == 1:
                if data.get("kind") != "parity-state":
                    raise StateError(f"{self.path}: not a parity state file")
                if check:
                    self._check_header(data)
            else:
                results.append(PairResult.from_dict(data))
        return results

    def _check_header(self, data: dict[str, Any]) -> None:
        for key in ("corpus_sha256", "primary", "candidate", "baseline"):
            if data.get(key) != self.header.get(key):
                raise StateError(
                    f"{self.path}: state belongs to another run ({key} was "
                    f"{data.get(key)!r}, now {self.header.get(key)!r}); delete it or "
                    "pass another --state file"
                )

    def open(self) -> None:
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            self._drop_partial_line()
        self._handle = self.path.open("a")
        if fresh:
            self._write(self.header)

    def _drop_partial_line(self) -> None:
        text = self.path.read_text()
        if text and not text.endswith("\n"):
            self.path.write_text(text[: text.rfind("\n") + 1])

    def _write(self, data: dict[str, Any]) -> None:
        assert self._handle is not None
        self._handle.write(json.dumps(data, sort_keys=True) + "\n")
        self._handle.flush()

    def append(self, result: PairResult) -> None:
        with self._lock:
            self._write(result.to_dict())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


class Progress:
    """A line on stderr at most once a second: done/total, rate, ETA, mismatches."""

    def __init__(self, total: int, done: int, stream: IO[str] | None = None) -> None:
        self.total, self.done, self.skipped = total, done, done
        self.mismatched = 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last = 0.0

    def tick(self, result: PairResult, *, force: bool = False) -> None:
        self.done += 1
        self.mismatched += not result.comparison.matched
        self.show(force=force)

    def show(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-6)
        rate = (self.done - self.skipped) / elapsed
        left = self.total - self.done
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        percent = 100 * self.done / self.total if self.total else 100
        print(
            f"parity: {self.done}/{self.total} ({percent:.0f}%) {rate:.1f} pairs/s "
            f"ETA {eta}, {self.mismatched} mismatched",
            file=self.stream,
            flush=True,
        )


class Replayer:
    """Replays requests against the configured backends with bounded concurrency."""

    def __init__(self, config: ReplayConfig) -> None:
        self.config = config
        self._local = threading.local()
        # The candidate's (and baseline's) request of a pair goes out from here while the
        # worker sends the primary's: the two are independent, so a pair takes the time
        # of the slower request, not of both.
        sides = 2 if config.baseline else 1
        self._sides = ThreadPoolExecutor(
            max_workers=sides * config.concurrency, thread_name_prefix="parity-side"
        )

    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def headers_for(self, request: CorpusRequest) -> dict[str, str]:
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            if key.lower() == "authorization" and value.startswith(IDENTITY_PREFIX):
                value = self.config.tokens[value[len(IDENTITY_PREFIX) :]]
            headers[key] = value
        if request.encoded_body() is not None and not any(
            k.lower() == "content-type" for k in headers
        ):
            headers["Content-Type"] = "application/json"
        # One host for every backend, so absolute URLs (pagination links, Location)
        # are built the same way and compare equal.
        host = self.config.host or urlsplit(self.config.primary).netloc
        headers.setdefault("X-Forwarded-Host", host)
        if not request.is_safe and not self.config.allow_writes:
            headers[DRY_RUN_HEADER] = "1"
            headers[ROUTER_TOKEN_HEADER] = self.config.router_token
        return headers

    def send(self, base: str, request: CorpusRequest) -> Exchange:
        response = self.session().request(
            request.method,
            base.rstrip("/") + request.target,
            headers=self.headers_for(request),
            data=request.encoded_body(),
            timeout=self.config.timeout,
            allow_redirects=False,
        )
        return Exchange(response.status_code, dict(response.headers), response.content)

    def _fetch(self, base: str, request: CorpusRequest) -> Exchange | str:
        try:
            return self.send(base, request)
        except requests.RequestException as exc:
            return f"request failed: {type(exc).__name__}: {exc}"

    def _compare(
        self, request: CorpusRequest, ours: Exchange | str, theirs: Exchange | str
    ) -> Comparison:
        if isinstance(ours, Exchange) and isinstance(theirs, Exchange):
            return compare(
                ours,
                theirs,
                method=request.method,
                path=request.target,
                rules=self.config.rules,
            )
        result = Comparison(
            endpoint=self.config.rules.endpoint_name(request.method, request.target),
            method=request.method,
            path=request.target,
        )
        result.differences.append(
            Difference(
                "status",
                "status",
                ours.status if isinstance(ours, Exchange) else ours,
                theirs.status if isinstance(theirs, Exchange) else theirs,
            )
        )
        return result

    def replay_one(self, index: int, request: CorpusRequest) -> PairResult:
        pending = self._sides.submit(self._fetch, self.config.candidate, request)
        pending_baseline = (
            self._sides.submit(self._fetch, self.config.baseline, request)
            if self.config.baseline
            else None
        )
        primary = self._fetch(self.config.primary, request)
        candidate = pending.result()
        result = PairResult(
            index=index,
            method=request.method,
            target=request.target,
            comparison=self._compare(request, primary, candidate),
            primary=primary if isinstance(primary, Exchange) else None,
            candidate=candidate if isinstance(candidate, Exchange) else None,
            declared_endpoint=request.endpoint,
        )
        if pending_baseline is not None:
            baseline = pending_baseline.result()
            result.baseline = self._compare(request, primary, baseline)
            if isinstance(baseline, Exchange):
                result.baseline_exchange = baseline
        return result

    def run(
        self,
        requests_: Sequence[CorpusRequest],
        *,
        skip: set[int] | None = None,
        on_result: Callable[[PairResult], None] | None = None,
    ) -> Iterator[PairResult]:
        """Yield a result per request not in ``skip``, as they finish. A replayer runs
        once: its pool for the pairs' second requests is shut down at the end."""
        skip = skip or set()
        pending = [(i, r) for i, r in enumerate(requests_) if i not in skip]
        with (
            self._sides,
            ThreadPoolExecutor(max_workers=self.config.concurrency) as pool,
        ):
            in_flight: set[Future[PairResult]] = set()
            for index, request in pending:
                barrier = self.config.allow_writes and not request.is_safe
                limit = 0 if barrier else 2 * self.config.concurrency - 1
                while len(in_flight) > limit:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    yield from (future.result() for future in done)
                future = pool.submit(self.replay_one, index, request)
                if barrier:
                    yield future.result()
                else:
                    in_flight.add(future)
            while in_flight:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)


def run_corpus(
    requests_: Sequence[CorpusRequest],
    config: ReplayConfig,
    *,
    state_path: Path | None = None,
    progress: bool = True,
) -> list[PairResult]:
    """Replay a corpus (resuming from ``state_path`` when it has results) and return
    every result, earlier ones included, in corpus order."""
    header = {
        "kind": "parity-state",
        "version": STATE_VERSION,
        "corpus_sha256": corpus_digest(requests_),
        "primary": config.primary,
        "candidate": config.candidate,
        "baseline": config.baseline,
    }
    state = StateFile(state_path, header) if state_path else None
    results = {r.index: r for r in state.load()} if state else {}
    if state:
        state.open()
    meter = Progress(len(requests_), len(results)) if progress else None
    try:
        for result in Replayer(config).run(requests_, skip=set(results)):
            results[result.index] = result
            if state:
                state.append(result)
            if meter:
                meter.tick(result)
    finally:
        if state:
            state.close()
        if meter:
            meter.show(force=True)
    return [results[i] for i in sorted(results)]


def router_token_from_env() -> str:
    return os.environ.get("STRANGLER_ROUTER_TOKEN", "")
