"""The router's Prometheus metrics, in a registry of its own served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "router_requests_total",
    "Requests answered, by route, backend, method and status",
    ["route", "backend", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "router_request_duration_seconds",
    "Time to the end of the response, by route and backend",
    ["route", "backend"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
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
CONFIG_VERSION = Gauge(
    "router_config_version", "The config version being served", registry=REGISTRY
)
CONFIG_REJECTED = Counter(
    "router_config_rejected_total",
    "Config versions refused by the router (invalid); the previous one stayed live",
    registry=REGISTRY,
)
