"""The router's Prometheus metrics, in a registry of its own served at ``/metrics``."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)


class RequestStats(Collector):
    """``router_requests_total`` and ``router_request_duration_seconds``, counted in plain
    dicts on the hot path and turned into metric families only when /metrics is scraped:
    a prometheus_client Counter and Histogram take a lock and several calls per request."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = buckets
        # (route, backend, method, status) -> requests
        self.requests: dict[tuple[str, str, str, int], int] = {}
        # (route, backend) -> [count per bucket ..., count over the last bound, sum]
        self.latency: dict[tuple[str, str], list[float]] = {}

    def add(
        self, route: str, backend: str, method: str, status: int, seconds: float
    ) -> None:
        key = (route, backend, method, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        pair = (route, backend)
        row = self.latency.get(pair)
        if row is None:
            row = self.latency[pair] = [0] * (len(self.bounds) + 1) + [0.0]
        row[bisect_left(self.bounds, seconds)] += 1
        row[-1] += seconds

    def per_route_and_backend(self) -> dict[tuple[str, str], int]:
        """Requests answered per (route, backend), all methods and statuses."""
        out: dict[tuple[str, str], int] = {}
        for (route, backend, _, _), n in list(self.requests.items()):
            out[route, backend] = out.get((route, backend), 0) + n
        return out

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "router_requests",
            "Requests answered, by route, backend, method and status",
            labels=["route", "backend", "method", "status"],
        )
        for (route, backend, method, status), n in list(self.requests.items()):
            requests.add_metric([route, backend, method, str(status)], n)
        yield requests
        latency = HistogramMetricFamily(
            "router_request_duration_seconds",
            "Time to the end of the response, by route and backend",
            labels=["route", "backend"],
        )
        for (route, backend), row in list(self.latency.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*self.bounds, math.inf), row[:-1], strict=True):
                cumulative += n
                buckets.append((floatToGoString(bound), cumulative))
            latency.add_metric([route, backend], buckets, sum_value=row[-1])
        yield latency


STATS = RequestStats()
REGISTRY.register(STATS)
UPSTREAM_ERRORS = Counter(
    "router_upstream_errors_total",
    "Failed upstream attempts, by backend and kind (connect, timeout, error, 5xx, open)",
    ["backend", "kind"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "router_fallbacks_total",
    "Requests answered by a route's fallback backend",
    ["route", "from_backend", "to_backend"],
    registry=REGISTRY,
)
OWNER_RETRIES = Counter(
    "router_owner_retries_total",
    "Writes sent again after a 409 owned_elsewhere while ownership moves, by route and "
    "the backend that refused",
    ["route", "backend"],
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "router_breaker_state",
    "Circuit breaker per backend: 0 closed, 1 half-open, 2 open",
    ["backend"],
    registry=REGISTRY,
)
SHADOW = Counter(
    "router_shadow_total",
    "Shadowed requests by route, shadow backend and result (match, converged, "
    "mismatch; fence-timeout and overtaken dry runs, not comparable; error, dropped, "
    "skipped; unconfirmed)",
    ["route", "backend", "result"],
    registry=REGISTRY,
)
ENGINE = Counter(
    "router_engine_total",
    "The C data path: requests it answered itself (answered), client connections it "
    "gave to the Python path (handed_off) and got back from it (taken_back)",
    ["event"],
    registry=REGISTRY,
)
CONFIG_VERSION = Gauge(
    "router_config_version", "The config version being served", registry=REGISTRY
)
CONFIG_REJECTED = Counter(
    "router_config_rejected_total",
    "Config versions refused by the router (invalid); the previous one stayed live",
    registry=REGISTRY,
)
