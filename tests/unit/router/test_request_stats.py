"""The router's request counter and latency histogram, kept in plain dicts and exposed when
/metrics is scraped: the exposition must read like prometheus_client's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from router.metrics import RequestStats


def _scrape(stats: RequestStats) -> dict[tuple, float]:
    registry = CollectorRegistry()
    registry.register(stats)
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counts_and_cumulative_buckets_per_route_and_backend():
    stats = RequestStats(buckets=(0.01, 0.1, 1))
    for seconds in (0.005, 0.01, 0.05, 0.5, 3.0):
        stats.add("votes", "vote", "GET", 200, seconds)
    stats.add("votes", "vote", "POST", 502, 0.2)
    stats.add("polls", "monolith", "GET", 200, 0.02)
    got = _scrape(stats)

    def labels(**kw: str) -> tuple:
        return tuple(sorted(kw.items()))

    requests = "router_requests_total"
    assert (
        got[
            (
                requests,
                labels(route="votes", backend="vote", method="GET", status="200"),
            )
        ]
        == 5
    )
    assert (
        got[
            (
                requests,
                labels(route="votes", backend="vote", method="POST", status="502"),
            )
        ]
        == 1
    )
    assert (
        got[
            (
                requests,
                labels(route="polls", backend="monolith", method="GET", status="200"),
            )
        ]
        == 1
    )
    bucket = "router_request_duration_seconds_bucket"
    votes = {"route": "votes", "backend": "vote"}
    # A bound counts the requests at or below it (le), cumulatively; 0.01 is in its own.
    assert [
        got[(bucket, labels(**votes, le=le))] for le in ("0.01", "0.1", "1.0", "+Inf")
    ] == [
        2,
        3,
        5,
        6,
    ]
    assert got[("router_request_duration_seconds_count", labels(**votes))] == 6
    assert (
        abs(got[("router_request_duration_seconds_sum", labels(**votes))] - 3.765)
        < 1e-9
    )
    polls = {"route": "polls", "backend": "monolith"}
    assert got[(bucket, labels(**polls, le="0.01"))] == 0
    assert got[(bucket, labels(**polls, le="0.1"))] == 1


def test_nothing_counted_exposes_the_families_without_samples():
    got = _scrape(RequestStats())
    assert got == {}


def test_requests_per_route_and_backend_for_the_status_page():
    stats = RequestStats()
    for route, backend, method, status in [
        ("votes", "vote", "GET", 200),
        ("votes", "vote", "POST", 201),
        ("votes", "vote", "POST", 201),
        ("votes", "monolith", "GET", 502),
        ("default", "monolith", "GET", 200),
    ]:
        stats.add(route, backend, method, status, 0.001)
    assert stats.per_route_and_backend() == {
        ("votes", "vote"): 3,
        ("votes", "monolith"): 1,
        ("default", "monolith"): 1,
    }
