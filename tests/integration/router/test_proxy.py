"""The router as a real process in front of real backends: headers, limits, errors, internal
paths, the operator's pages and override."""

from __future__ import annotations

from tests.integration.router import procs
from tests.integration.router.conftest import config_text

OPERATOR = {"X-Strangler-Operator-Token": procs.OPERATOR_TOKEN}


def test_proxy_headers_body_and_route_header(two_backends, store, start_router):
    alpha, beta = two_backends
    routes = (
        "  - {name: all, path: /**, to: alpha}\n  - {name: b, path: /b/**, to: beta}\n"
    )
    store.commit(
        config_text({"alpha": alpha.url, "beta": beta.url}, routes), action="t", why="t"
    )
    router = start_router()
    body = b"x" * 200_000
    response = procs.http.post(
        router.url + "/b/upload?x=1&y=%2F",
        data=body,
        headers={
            "X-Request-ID": "req-123",
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "must-not-pass",
            "X-Forwarded-For": "10.0.0.1",
            "X-Strangler-Dry-Run": "1",
            "X-Strangler-Router-Token": "forged",
        },
    )
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["backend"] == "beta"
    assert echoed["query"] == "x=1&y=%2F"
    assert echoed["body_len"] == len(body)
    sent = echoed["headers"]
    assert sent["x-request-id"] == "req-123"
    assert sent["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == router.url.removeprefix("http://")
    assert "x-secret-hop" not in sent
    assert "x-strangler-dry-run" not in sent and "x-strangler-router-token" not in sent
    assert response.headers["X-Request-ID"] == "req-123"
    assert response.headers["X-Strangler-Route"] == "b; backend=beta; version=1"
    assert response.headers["X-Backend"] == "beta"
    created = procs.http.get(router.url + "/anything")
    assert len(created.headers["X-Request-ID"]) == 32
    assert created.headers["X-Strangler-Route"] == "all; backend=alpha; version=1"


def test_streams_a_large_response(two_backends, store, start_router):
    alpha, _ = two_backends
    store.commit(
        config_text({"alpha": alpha.url}, "  - {path: /**, to: alpha}\n"),
        action="t",
        why="t",
    )
    router = start_router()
    with procs.http.get(router.url + "/big?n=5000000", stream=True) as response:
        total = sum(len(c) for c in response.iter_content(1 << 16))
    assert total == 5_000_000


def test_body_limit_internal_paths_and_unknown_routes(
    two_backends, store, start_router
):
    alpha, _ = two_backends
    settings = "  max_body_bytes: 1000\n  internal: [/admin/**]"
    routes = "  - {name: api, path: /api/**, to: alpha}\n"
    store.commit(
        config_text({"alpha": alpha.url}, routes, settings), action="t", why="t"
    )
    router = start_router()
    big = procs.http.post(router.url + "/api/x", data=b"y" * 5000)
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "too_large"
    for path in ("/_strangler/internal/secret", "/admin/login/"):
        denied = procs.http.get(router.url + path, headers=OPERATOR)
        assert denied.status_code == 404, path
    missing = procs.http.get(router.url + "/elsewhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "no_route"


def test_dead_and_slow_backends_get_json_errors_naming_them(
    two_backends, store, tmp_path, start_router
):
    alpha, _ = two_backends
    dead = f"http://127.0.0.1:{procs.free_port()}"
    routes = "  - {name: dead, path: /dead/**, to: gone}\n  - {name: slow, path: /**, to: alpha}\n"
    store.commit(
        config_text({"alpha": alpha.url, "gone": dead}, routes), action="t", why="t"
    )
    router = start_router()
    response = procs.http.get(router.url + "/dead/x", timeout=10)
    assert response.status_code == 502
    assert "'gone'" in response.json()["error"]["message"]
    assert response.headers["X-Strangler-Route"] == "dead; backend=gone; version=1"
    slow = procs.http.get(router.url + "/slow?s=3", timeout=10)
    assert slow.status_code == 504
    assert slow.json()["error"]["code"] == "backend_timeout"
    assert "'alpha'" in slow.json()["error"]["message"]


def test_operator_pages_and_backend_override(two_backends, store, start_router):
    alpha, beta = two_backends
    store.commit(
        config_text(
            {"alpha": alpha.url, "beta": beta.url},
            "  - {name: all, path: /**, to: alpha}\n",
        ),
        action="t",
        why="t",
    )
    router = start_router()
    assert procs.http.get(router.url + "/_strangler/api/status").status_code == 403
    status = procs.http.get(
        router.url + "/_strangler/api/status", headers=OPERATOR
    ).json()
    assert status["version"] == 1
    assert status["backends"]["alpha"]["breaker"] == "closed"
    page = procs.http.get(router.url + "/_strangler/", headers=OPERATOR)
    assert "config version 1" in page.text
    forced = {"X-Strangler-Backend": "beta"}
    assert (
        procs.http.get(router.url + "/x", headers=forced).json()["backend"] == "alpha"
    )
    assert (
        procs.http.get(router.url + "/x", headers={**forced, **OPERATOR}).json()[
            "backend"
        ]
        == "beta"
    )
    unknown = procs.http.get(
        router.url + "/x", headers={"X-Strangler-Backend": "zeta", **OPERATOR}
    )
    assert unknown.status_code == 400
    metrics = procs.http.get(router.url + "/metrics").text
    assert (
        'router_requests_total{backend="beta",method="GET",route="all",status="200"} 1.0'
        in metrics
    )
    assert "router_config_version 1.0" in metrics
