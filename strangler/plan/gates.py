"""Gates: small functions ``gate(context) -> GateResult`` checking one threshold of the stage
being entered against live data.

Each plan gate key maps to one function (``GATES``). A gate whose data source is missing or
unreachable fails with ``no data: …``; nothing passes silently. ``canary_percent`` and
``sequences_gap`` are settings for the stage's actions, not gates.

Sources: sync status and verify records in the service database (backfill, verify, schema),
the outbox tables of both producers (lag), and the router's ``/metrics``
(``router_shadow_total`` for parity, ``router_requests_total`` for the canary). Router metrics
are counters since the router started, per worker process. Parity counts converged reads as
matches and leaves dry runs the service did not execute out of the rate and the samples.
"""

from __future__ import annotations

import math
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg2

from strangler.plan.resources import Resources, Unavailable
from strangler.plan.stages import MONOLITH_BACKEND
from strangler.plans import Plan
from strangler.sync.db import SyncError

NOT_GATES = frozenset({"canary_percent", "sequences_gap"})
# A clean monolith would make any service error an infinite ratio; floor its error rate.
MONOLITH_ERROR_RATE_FLOOR = 0.001


@dataclass
class GateResult:
    name: str
    value: Any
    threshold: Any
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateContext:
    plan: Plan
    stage: str
    thresholds: dict[str, Any]
    resources: Resources
    fresh_verify: bool = False
    service_backend: str = ""
    cache: dict[str, Any] = field(default_factory=dict)


class NoData(Exception):
    """The gate's data source is not available."""


def _no_data(name: str, threshold: Any, why: str) -> GateResult:
    return GateResult(name, None, threshold, False, f"no data: {why}")


# --- sync-backed gates -------------------------------------------------------------------


def _sync_status(ctx: GateContext) -> dict[str, Any]:
    if "status" not in ctx.cache:
        from strangler.sync.status import status

        ctx.cache["status"] = status(
            ctx.plan, ctx.resources.source(), ctx.resources.target()
        )
    return ctx.cache["status"]


def schema_preflight(ctx: GateContext) -> GateResult:
    from strangler.sync.spec import resolve

    resolve(ctx.plan, ctx.resources.source(), ctx.resources.target())
    return GateResult(
        "schema_preflight",
        "ok",
        True,
        True,
        f"{len(ctx.plan.tables)} table(s) match the plan in both databases",
    )


def backfill_complete(ctx: GateContext) -> GateResult:
    tables = _sync_status(ctx)["tables"]
    done = [t for t in tables if t["backfill"]["completed"]]
    missing = [t["target"] for t in tables if not t["backfill"]["completed"]]
    return GateResult(
        "backfill_complete",
        f"{len(done)}/{len(tables)} tables",
        True,
        not missing,
        "every table copied" if not missing else f"not complete: {', '.join(missing)}",
    )


def newest_verifies(ctx: GateContext) -> list[dict[str, Any]]:
    """The newest verify per table, after running a fresh one if the gate needs it."""
    if "verifies" in ctx.cache:
        return ctx.cache["verifies"]
    max_age = ctx.thresholds.get("verify_max_age_seconds")
    max_diff = ctx.thresholds.get("verify_max_differences", 0)
    verifies = [t["verify"] for t in _sync_status(ctx)["tables"]]
    stale = any(
        v is None
        or (max_age is not None and v["age_seconds"] > max_age)
        or v["differences"] > max_diff
        for v in verifies
    )
    if stale and ctx.fresh_verify:
        from strangler.sync.status import status
        from strangler.sync.verify import VerifyOptions, verify

        print(f"plan {ctx.plan.service}: running a fresh verify", file=sys.stderr)
        verify(
            ctx.plan, ctx.resources.source(), ctx.resources.target(), VerifyOptions()
        )
        fresh = status(ctx.plan, ctx.resources.source(), ctx.resources.target())
        ctx.cache["status"] = fresh
        verifies = [t["verify"] for t in fresh["tables"]]
        ctx.cache["fresh_verify_ran"] = True
    ctx.cache["verifies"] = verifies
    return verifies


def verify_differences(ctx: GateContext) -> GateResult:
    limit = ctx.thresholds["verify_max_differences"]
    verifies = newest_verifies(ctx)
    if any(v is None for v in verifies):
        raise NoData(
            "verify has never run for every table; run `strangler sync verify`"
        )
    total = sum(v["differences"] for v in verifies)
    fresh = " (fresh verify)" if ctx.cache.get("fresh_verify_ran") else ""
    return GateResult(
        "verify_max_differences",
        total,
        limit,
        total <= limit,
        f"{total} difference(s) in the newest verify{fresh}",
    )


def verify_age(ctx: GateContext) -> GateResult:
    limit = ctx.thresholds["verify_max_age_seconds"]
    verifies = newest_verifies(ctx)
    if any(v is None for v in verifies):
        raise NoData(
            "verify has never run for every table; run `strangler sync verify`"
        )
    age = max(v["age_seconds"] for v in verifies)
    return GateResult(
        "verify_max_age_seconds",
        age,
        limit,
        age <= limit,
        f"oldest table verify finished {age:.0f}s ago",
    )


def _lag(ctx: GateContext, name: str, reverse: bool) -> GateResult:
    from strangler.sync.lag import outbox_lag_seconds

    limit = ctx.thresholds[name]
    db = ctx.resources.target() if reverse else ctx.resources.source()
    lag = outbox_lag_seconds(db)
    side = "service → monolith" if reverse else "monolith → service"
    if lag is None:
        raise NoData(
            f"no outbox table in the {'service' if reverse else 'monolith'} database"
        )
    return GateResult(
        name,
        round(lag, 3),
        limit,
        lag <= limit,
        f"oldest unsent event {side} waited {lag:.1f}s",
    )


def forward_lag(ctx: GateContext) -> GateResult:
    return _lag(ctx, "outbox_lag_max_seconds", reverse=False)


def reverse_lag(ctx: GateContext) -> GateResult:
    return _lag(ctx, "reverse_lag_max_seconds", reverse=True)


# --- router-backed gates -----------------------------------------------------------------


def plan_route_names(ctx: GateContext, endpoints: tuple[str, ...]) -> set[str]:
    try:
        config = ctx.resources.route_store.live().config
    except Exception as exc:
        raise NoData(f"router store: {exc}") from None
    names = set()
    for endpoint in endpoints:
        route = config.find(endpoint)
        names.add(route.name if route is not None else f"{ctx.plan.service} {endpoint}")
    return names


def _samples(ctx: GateContext, metric: str) -> list[tuple[dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = ctx.resources.metrics_text()
    except Unavailable as exc:
        raise NoData(str(exc)) from None
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric:
                out.append((dict(sample.labels), float(sample.value)))
    return out


@dataclass(frozen=True)
class ShadowCounts:
    """The router's shadow results for a plan: a converged read is a match that lagged;
    a dry run the service did not execute (fence-timeout, overtaken) is not comparable,
    neither a match nor a mismatch, and is not a sample."""

    matched: int = 0
    mismatched: int = 0
    fence_timeout: int = 0
    overtaken: int = 0

    @property
    def compared(self) -> int:
        return self.matched + self.mismatched

    @property
    def not_comparable(self) -> str:
        total = self.fence_timeout + self.overtaken
        return (
            f"{total} not comparable (fence-timeout {self.fence_timeout}, "
            f"overtaken {self.overtaken})"
        )


_SHADOW_RESULTS = {
    "match": "matched",
    "converged": "matched",
    "mismatch": "mismatched",
    "fence-timeout": "fence_timeout",
    "overtaken": "overtaken",
}


def _shadow_counts(ctx: GateContext) -> ShadowCounts:
    if "shadow" not in ctx.cache:
        routes = plan_route_names(
            ctx, ctx.plan.read_endpoints + ctx.plan.write_endpoints
        )
        counts = dict.fromkeys(_SHADOW_RESULTS.values(), 0.0)
        for labels, value in _samples(ctx, "router_shadow_total"):
            field_name = _SHADOW_RESULTS.get(labels.get("result", ""))
            if (
                field_name is not None
                and labels.get("route") in routes
                and labels.get("backend") == ctx.service_backend
            ):
                counts[field_name] += value
        ctx.cache["shadow"] = ShadowCounts(**{k: int(v) for k, v in counts.items()})
    return ctx.cache["shadow"]


def parity_rate(ctx: GateContext) -> GateResult:
    limit = ctx.thresholds["parity_min_rate"]
    counts = _shadow_counts(ctx)
    if counts.compared == 0:
        raise NoData(
            "the router has compared no shadowed response for this plan's routes "
            f"({counts.not_comparable})"
        )
    rate = counts.matched / counts.compared
    return GateResult(
        "parity_min_rate",
        round(rate, 6),
        limit,
        rate >= limit,
        f"{counts.matched} of {counts.compared} shadowed responses matched; "
        f"{counts.not_comparable}",
    )


def parity_samples(ctx: GateContext) -> GateResult:
    limit = ctx.thresholds["parity_min_samples"]
    counts = _shadow_counts(ctx)
    return GateResult(
        "parity_min_samples",
        counts.compared,
        limit,
        counts.compared >= limit,
        f"{counts.compared} shadowed responses compared ({counts.mismatched} "
        f"mismatched); {counts.not_comparable}",
    )


def _canary(ctx: GateContext) -> dict[str, tuple[int, int]]:
    if "canary" not in ctx.cache:
        routes = plan_route_names(ctx, ctx.plan.read_endpoints)
        counts = {ctx.service_backend: [0, 0], MONOLITH_BACKEND: [0, 0]}
        for labels, value in _samples(ctx, "router_requests_total"):
            backend = labels.get("backend")
            if labels.get("route") in routes and backend in counts:
                counts[backend][0] += int(value)
                if labels.get("status", "").startswith("5"):
                    counts[backend][1] += int(value)
        ctx.cache["canary"] = {k: (v[0], v[1]) for k, v in counts.items()}
    return ctx.cache["canary"]


def canary_requests(ctx: GateContext) -> GateResult:
    limit = ctx.thresholds["canary_min_requests"]
    total, errors = _canary(ctx)[ctx.service_backend]
    return GateResult(
        "canary_min_requests",
        total,
        limit,
        total >= limit,
        f"{total} read request(s) answered by {ctx.service_backend} ({errors} 5xx)",
    )


def canary_error_ratio(ctx: GateContext) -> GateResult:
    limit = ctx.thresholds["canary_max_error_rate_ratio"]
    counts = _canary(ctx)
    s_total, s_err = counts[ctx.service_backend]
    m_total, m_err = counts[MONOLITH_BACKEND]
    if s_total == 0:
        raise NoData(f"no read request was answered by {ctx.service_backend} yet")
    s_rate = s_err / s_total
    m_rate = max(m_err / m_total if m_total else 0.0, MONOLITH_ERROR_RATE_FLOOR)
    ratio = s_rate / m_rate
    return GateResult(
        "canary_max_error_rate_ratio",
        round(ratio, 4) if math.isfinite(ratio) else None,
        limit,
        ratio <= limit,
        f"5xx rate {ctx.service_backend} {s_rate:.4%} ({s_err}/{s_total}) vs monolith "
        f"{m_err}/{m_total} (floor {MONOLITH_ERROR_RATE_FLOOR:.1%})",
    )


GATES: dict[str, Callable[[GateContext], GateResult]] = {
    "schema_preflight": schema_preflight,
    "backfill_complete": backfill_complete,
    "verify_max_differences": verify_differences,
    "verify_max_age_seconds": verify_age,
    "outbox_lag_max_seconds": forward_lag,
    "reverse_lag_max_seconds": reverse_lag,
    "parity_min_rate": parity_rate,
    "parity_min_samples": parity_samples,
    "canary_min_requests": canary_requests,
    "canary_max_error_rate_ratio": canary_error_ratio,
}


def run_gate(name: str, ctx: GateContext) -> GateResult:
    """One gate, with every failure to get its data turned into a failed result."""
    threshold = ctx.thresholds.get(name)
    gate = GATES.get(name)
    if gate is None:
        return GateResult(
            name, None, threshold, False, "no gate implementation for this key"
        )
    if threshold is False:
        return GateResult(name, None, False, True, "disabled in the plan")
    try:
        return gate(ctx)
    except NoData as exc:
        return _no_data(name, threshold, str(exc))
    except (Unavailable, SyncError) as exc:
        return _no_data(name, threshold, str(exc))
    except (psycopg2.Error, sqlite3.Error) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _no_data(name, threshold, f"query failed ({first})")


def evaluate(ctx: GateContext) -> list[GateResult]:
    """Every gate the entered stage declares, in the plan's order."""
    return [run_gate(name, ctx) for name in ctx.thresholds if name not in NOT_GATES]
