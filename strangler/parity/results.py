"""The outcome of one replayed request, as kept in memory and in the resumable state file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from strangler.compare import Comparison, Exchange
from strangler.parity.records import exchange_from_dict, exchange_to_dict

# Kept bodies are cut to this many bytes so a state file of a long run stays small.
MAX_SAMPLE_BODY = 64 * 1024
_INDEX_SEGMENT = re.compile(r"(?<=/)\d+(?=/|$)")


def field_of(path: str) -> str:
    """``/results/3/created_at`` → ``/results/*/created_at``: a difference's field."""
    return _INDEX_SEGMENT.sub("*", path)


def _trim(exchange: Exchange | None) -> Exchange | None:
    if exchange is None or len(exchange.body) <= MAX_SAMPLE_BODY:
        return exchange
    return Exchange(exchange.status, exchange.headers, exchange.body[:MAX_SAMPLE_BODY])


@dataclass
class PairResult:
    """One request replayed to primary and candidate (and baseline, when given)."""

    index: int
    method: str
    target: str
    comparison: Comparison
    baseline: Comparison | None = None
    primary: Exchange | None = None
    candidate: Exchange | None = None
    baseline_exchange: Exchange | None = None
    route: str = ""
    declared_endpoint: str = ""
    primary_status: int | None = None

    @property
    def status(self) -> int | None:
        """The primary's status (None when it could not be reached)."""
        return self.primary.status if self.primary is not None else self.primary_status

    @property
    def endpoint(self) -> str:
        """The corpus's endpoint (the schema operation) when known, else the comparison's."""
        return self.declared_endpoint or self.comparison.endpoint

    def to_dict(self) -> dict[str, Any]:
        keep = bool(self.comparison.differences or self.comparison.noise) or bool(
            self.baseline and self.baseline.differences
        )
        data: dict[str, Any] = {
            "index": self.index,
            "method": self.method,
            "target": self.target,
            "comparison": self.comparison.to_dict(),
        }
        if self.status is not None:
            data["status"] = self.status
        if self.route:
            data["route"] = self.route
        if self.declared_endpoint:
            data["endpoint"] = self.declared_endpoint
        if self.baseline is not None:
            data["baseline"] = self.baseline.to_dict()
        if keep:
            for key, exchange in (
                ("primary", self.primary),
                ("candidate", self.candidate),
                ("baseline_exchange", self.baseline_exchange),
            ):
                trimmed = _trim(exchange)
                if trimmed is not None:
                    data[key] = exchange_to_dict(trimmed)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairResult:
        def exchange(key: str) -> Exchange | None:
            return exchange_from_dict(data[key]) if data.get(key) else None

        return cls(
            index=int(data["index"]),
            method=data["method"],
            target=data["target"],
            comparison=Comparison.from_dict(data["comparison"]),
            baseline=Comparison.from_dict(data["baseline"])
            if data.get("baseline")
            else None,
            primary=exchange("primary"),
            candidate=exchange("candidate"),
            baseline_exchange=exchange("baseline_exchange"),
            route=data.get("route", ""),
            declared_endpoint=data.get("endpoint", ""),
            primary_status=data.get("status"),
        )
