"""The router's shadow records: one JSONL line per shadowed request, both answers in it.

The router writes them (``ShadowRecord.to_json``) and ``strangler parity report --shadow``
reads them, so live shadow results and replayed runs share one report. A line::

    {"version": 1, "at": "2026-11-28T00:00:00Z", "route": "GET /api/votes/**",
     "method": "GET", "path": "/api/votes/?page=2",
     "primary": {"backend": "monolith", "status": 200, "headers": {...}, "body": "..."},
     "shadow": {"backend": "vote", "status": 200, "headers": {...}, "body": "..."},
     "request": {"headers": {"accept": "application/json", "authorization": "[redacted]"}},
     "dry_run": false, "comparison": {...}}

``body`` is the UTF-8 text of the body, or base64 when ``"encoding": "base64"`` is set.
``headers`` of both answers are kept whole, so a report with other rules can recompute header
differences; ``request.headers`` are the request's, credentials redacted (``redact_headers``).
``comparison`` (``Comparison.to_dict()``) is optional; the report recomputes it when given
rules. ``path`` includes the query string.

A read whose first comparison differed is sent again to both backends once the event lag
has passed (the router's ``shadow_recheck_seconds``): ``primary``, ``shadow`` and
``comparison`` are then that recheck's, which decides the outcome, and the first pair is
kept under ``"first": {"at": ..., "primary": {...}, "shadow": {...}, "comparison": {...}}``
for inspection. A recheck that matched is *converged*: a match that lagged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strangler.compare import Comparison, Exchange

RECORD_VERSION = 1
REDACTED = "[redacted]"
# Never written to a record: the router's own credential for dry runs.
DROPPED_HEADERS = frozenset({"x-strangler-router-token"})
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class RecordError(ValueError):
    """A shadow record that cannot be read; names the file, line and key."""


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Request headers fit for a record: credentials' values replaced, the router token
    dropped (whether a request was authenticated still shows)."""
    kept = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in DROPPED_HEADERS:
            continue
        kept[name] = REDACTED if lowered in SECRET_HEADERS else value
    return kept


def exchange_to_dict(exchange: Exchange, backend: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": exchange.status,
        "headers": dict(exchange.headers),
    }
    if backend:
        data["backend"] = backend
    try:
        data["body"] = exchange.body.decode("utf-8")
    except UnicodeDecodeError:
        data["body"] = base64.b64encode(exchange.body).decode("ascii")
        data["encoding"] = "base64"
    return data


def exchange_from_dict(data: Mapping[str, Any]) -> Exchange:
    body = data.get("body") or ""
    raw = (
        base64.b64decode(body)
        if data.get("encoding") == "base64"
        else str(body).encode("utf-8")
    )
    return Exchange(
        status=int(data["status"]), headers=dict(data.get("headers") or {}), body=raw
    )


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class ShadowPair:
    """The first, superseded pair of answers to a rechecked request."""

    primary: Exchange
    shadow: Exchange
    comparison: Comparison | None = None
    at: str = field(default_factory=_now)


@dataclass
class ShadowRecord:
    """Both answers to one shadowed request."""

    route: str
    method: str
    path: str
    primary: Exchange
    shadow: Exchange
    primary_backend: str = ""
    shadow_backend: str = ""
    at: str = field(default_factory=_now)
    comparison: Comparison | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    first: ShadowPair | None = None

    @property
    def converged(self) -> bool:
        """Differed at first, matched on the recheck: the shadow was behind, not wrong."""
        return (
            self.first is not None
            and self.comparison is not None
            and self.comparison.matched
        )

    def to_dict(self) -> dict[str, Any]:
        data = {
            "version": RECORD_VERSION,
            "at": self.at,
            "route": self.route,
            "method": self.method,
            "path": self.path,
            "primary": exchange_to_dict(self.primary, self.primary_backend),
            "shadow": exchange_to_dict(self.shadow, self.shadow_backend),
            "request": {"headers": redact_headers(self.request_headers)},
            "dry_run": self.dry_run,
        }
        if self.comparison is not None:
            data["comparison"] = self.comparison.to_dict()
        if self.first is not None:
            first = self.first
            data["first"] = {
                "at": first.at,
                "primary": exchange_to_dict(first.primary, self.primary_backend),
                "shadow": exchange_to_dict(first.shadow, self.shadow_backend),
            }
            if first.comparison is not None:
                data["first"]["comparison"] = first.comparison.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShadowRecord:
        """Also reads the router's first record shape (``when``, ``diff``, top-level
        ``backend``), so records written before this format still render."""
        comparison = data.get("comparison") or data.get("diff")
        request = data.get("request") or {}
        first = data.get("first")
        return cls(
            route=str(data.get("route", "")),
            method=str(data["method"]).upper(),
            path=str(data["path"]),
            primary=exchange_from_dict(data["primary"]),
            shadow=exchange_from_dict(data["shadow"]),
            primary_backend=str(data["primary"].get("backend", "")),
            shadow_backend=str(data["shadow"].get("backend", data.get("backend", ""))),
            at=str(data.get("at", data.get("when", ""))),
            comparison=Comparison.from_dict(comparison) if comparison else None,
            request_headers=dict(request.get("headers") or {}),
            dry_run=bool(data.get("dry_run", False)),
            first=_pair_from_dict(first) if first else None,
        )


def _pair_from_dict(data: Mapping[str, Any]) -> ShadowPair:
    comparison = data.get("comparison")
    return ShadowPair(
        primary=exchange_from_dict(data["primary"]),
        shadow=exchange_from_dict(data["shadow"]),
        comparison=Comparison.from_dict(comparison) if comparison else None,
        at=str(data.get("at", "")),
    )


def read_records(path: str | Path) -> Iterator[ShadowRecord]:
    """Shadow records from a JSONL file; a bad line raises RecordError naming it."""
    source = Path(path)
    try:
        handle = source.open()
    except OSError as exc:
        raise RecordError(
            f"{source}: cannot read shadow records ({exc.strerror})"
        ) from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{source}:{number}"
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise RecordError(f"{where}: not valid JSON ({exc.args[0]})") from None
            if not isinstance(data, dict):
                raise RecordError(f"{where}: each line must be a JSON object")
            for key in ("method", "path", "primary", "shadow"):
                if key not in data:
                    raise RecordError(f"{where}: missing key {key!r}")
            for side in ("primary", "shadow"):
                if not isinstance(data[side], dict) or not isinstance(
                    data[side].get("status"), int
                ):
                    raise RecordError(
                        f"{where}: key {side!r}: must be an object with an integer 'status'"
                    )
            version = data.get("version", RECORD_VERSION)
            if version != RECORD_VERSION:
                raise RecordError(
                    f"{where}: key 'version': {version!r} is not supported "
                    f"(this strangler reads version {RECORD_VERSION})"
                )
            try:
                yield ShadowRecord.from_dict(data)
            except (KeyError, TypeError, ValueError) as exc:
                raise RecordError(f"{where}: malformed record ({exc})") from None
