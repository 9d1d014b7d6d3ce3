"""The parity gates read the router's shadow counters: converged reads are matches, dry runs
the service did not execute (fence-timeout, overtaken) are neither, and are not samples."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Counter, generate_latest

from strangler.plan.gates import GateContext, parity_rate, parity_samples

ROUTE = "vote POST /api/votes/"


def context(results: dict[str, int], *, route: str = ROUTE) -> GateContext:
    registry = CollectorRegistry()
    shadow = Counter(
        "router_shadow_total", "", ["route", "backend", "result"], registry=registry
    )
    for result, count in results.items():
        shadow.labels(route, "vote", result).inc(count)
    shadow.labels("other", "vote", "mismatch").inc(50)  # not the plan's route
    config = SimpleNamespace(find=lambda endpoint: SimpleNamespace(name=ROUTE))
    resources = SimpleNamespace(
        metrics_text=lambda: generate_latest(registry).decode(),
        route_store=SimpleNamespace(live=lambda: SimpleNamespace(config=config)),
    )
    plan = SimpleNamespace(
        service="vote", read_endpoints=(), write_endpoints=("POST /api/votes/",)
    )
    return GateContext(
        plan=plan,
        stage="canary",
        thresholds={"parity_min_rate": 0.999, "parity_min_samples": 1000},
        resources=resources,
        service_backend="vote",
    )


def test_not_comparable_dry_runs_are_outside_the_rate_and_the_samples():
    ctx = context(
        {"match": 990, "converged": 10, "overtaken": 40, "fence-timeout": 2, "error": 5}
    )
    rate, samples = parity_rate(ctx), parity_samples(ctx)
    assert (rate.value, rate.passed) == (1.0, True)
    assert rate.detail == (
        "1000 of 1000 shadowed responses matched; "
        "42 not comparable (fence-timeout 2, overtaken 40)"
    )
    assert (samples.value, samples.passed) == (1000, True)


def test_not_comparable_dry_runs_do_not_make_up_missing_samples():
    ctx = context({"match": 998, "mismatch": 1, "overtaken": 500})
    rate, samples = parity_rate(ctx), parity_samples(ctx)
    assert (samples.value, samples.passed) == (999, False)
    assert rate.value == round(998 / 999, 6) and rate.passed is False
