"""Live behaviour under change: config flips under load, a refused bad version, fallback
when a backend dies, the breaker, and the sticky canary through the router."""

from __future__ import annotations

import os
import threading
import time

import requests

from tests.integration.router import procs
from tests.integration.router.conftest import config_text

LONG = os.environ.get("STRANGLER_LONG") == "1"


def flip_config(alpha: str, beta: str, to: str) -> str:
    return config_text(
        {"alpha": alpha, "beta": beta},
        f"  - {{name: votes, methods: [GET], path: /api/votes/**, to: {to}}}\n"
        "  - {name: default, path: /**, to: alpha}\n",
    )


def test_flips_under_load_drop_nothing_and_report_live_versions(
    two_backends, store, start_router
):
    alpha, beta = two_backends
    store.commit(flip_config(alpha.url, beta.url, "alpha"), action="t", why="start")
    router = start_router(ROUTER_ACCESS_LOG="0")
    flips = 1000 if LONG else 100
    stop = threading.Event()
    results: list[tuple[int, str, str]] = []
    failures: list[str] = []

    def load() -> None:
        session = procs.session()
        while not stop.is_set():
            try:
                r = session.get(router.url + "/api/votes/1/", timeout=5)
                results.append(
                    (
                        r.status_code,
                        r.headers.get("X-Strangler-Route", ""),
                        r.json()["backend"],
                    )
                )
            except requests.RequestException as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    version_backend = {1: "alpha"}
    for i in range(flips):
        to = "beta" if i % 2 == 0 else "alpha"
        version = store.commit(
            flip_config(alpha.url, beta.url, to), action=f"flip {i}", why="test"
        )
        version_backend[version] = to
        time.sleep(0.02)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    assert not failures
    assert len(results) > flips
    assert all(status == 200 for status, _, _ in results)
    seen_versions = set()
    for _, header, served_by in results:
        name, backend_part, version_part = (p.strip() for p in header.split(";"))
        version = int(version_part.removeprefix("version="))
        seen_versions.add(version)
        assert name == "votes"
        assert version in version_backend
        assert (
            backend_part
            == f"backend={version_backend[version]}"
            == f"backend={served_by}"
        )
    assert max(seen_versions) == max(version_backend)
    assert len(seen_versions) > 2


def test_bad_version_is_refused_and_the_old_one_keeps_serving(
    two_backends, store, start_router
):
    alpha, beta = two_backends
    store.commit(flip_config(alpha.url, beta.url, "alpha"), action="t", why="start")
    router = start_router()
    # Bypass the CLI's validation, as a hand edit would.
    store.version_path(2).write_text(
        "backends: {}\nroutes: [{path: /**, to: nowhere}]\n"
    )
    store.current_file.write_text("2\n")
    time.sleep(1.0)
    response = procs.http.get(router.url + "/api/votes/1/")
    assert response.status_code == 200
    assert response.headers["X-Strangler-Route"] == "votes; backend=alpha; version=1"
    status = procs.http.get(
        router.url + "/_strangler/api/status",
        headers={"X-Strangler-Operator-Token": procs.OPERATOR_TOKEN},
    ).json()
    assert status["version"] == 1
    assert status["last_refused"]["version"] == 2
    assert "backends: missing or empty" in status["last_refused"]["error"]
    assert (
        "router_config_rejected_total 1.0"
        in procs.http.get(router.url + "/metrics").text
    )
    store.commit(flip_config(alpha.url, beta.url, "beta"), action="t", why="fixed")
    time.sleep(1.0)
    assert procs.http.get(router.url + "/api/votes/1/").headers[
        "X-Strangler-Route"
    ] == ("votes; backend=beta; version=3")


def test_kill_the_backend_and_gets_fall_back(tmp_path, store, start_router):
    primary = procs.backend("primary", tmp_path)
    spare = procs.backend("spare", tmp_path)
    with procs.running(primary, spare):
        routes = "  - {name: api, path: /**, to: primary, fallback: spare}\n"
        settings = "  breaker_failures: 3\n  breaker_reset_seconds: 30"
        store.commit(
            config_text({"primary": primary.url, "spare": spare.url}, routes, settings),
            action="t",
            why="t",
        )
        router = start_router()
        session = procs.session()
        assert session.get(router.url + "/x").json()["backend"] == "primary"
        assert session.get(router.url + "/fail").json()["backend"] == "spare"
        primary.kill()
        served = [session.get(router.url + f"/x/{i}") for i in range(20)]
        assert all(r.status_code == 200 for r in served)
        assert {r.json()["backend"] for r in served} == {"spare"}
        assert (
            served[-1].headers["X-Strangler-Route"] == "api; backend=spare; version=1"
        )
        post = session.post(router.url + "/x", data=b"vote")
        assert post.status_code in (502, 503)
        assert "'primary'" in post.json()["error"]["message"]
        metrics = session.get(router.url + "/metrics").text
        assert 'router_breaker_state{backend="primary"} 2.0' in metrics
        assert (
            'router_fallbacks_total{from_backend="primary",route="api",to_backend="spare"}'
            in metrics
        )


def test_canary_through_the_router_is_sticky_and_only_moves_forward(
    two_backends, store, start_router
):
    alpha, beta = two_backends

    def canary(percent: int) -> str:
        return config_text(
            {"alpha": alpha.url, "beta": beta.url},
            "  - name: votes\n    path: /**\n    to: alpha\n"
            f"    canary: {{to: beta, percent: {percent}, key: 'header:X-User'}}\n",
        )

    store.commit(canary(10), action="t", why="10%")
    router = start_router(ROUTER_ACCESS_LOG="0")
    session = procs.session()
    users = [f"user-{i}" for i in range(1000)]

    def sides() -> set[str]:
        return {
            u for u in users
            if session.get(router.url + "/v", headers={"X-User": u}).json()["backend"] == "beta"
        }  # fmt: skip

    at_10 = sides()
    assert 60 <= len(at_10) <= 140
    assert sides() == at_10
    store.commit(canary(20), action="t", why="20%")
    time.sleep(1.0)
    at_20 = sides()
    assert at_10 <= at_20
    assert 140 <= len(at_20) <= 260
