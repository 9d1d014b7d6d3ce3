"""Several router workers (``ROUTER_WORKERS``) give one view: whichever worker answers
``/metrics`` or ``/_strangler/api/status`` counts what all of them served, a worker killed
with SIGKILL included."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.router import procs
from tests.integration.router.procs import OPERATOR_TOKEN as OPERATOR
from tests.integration.router.test_http import _router

CLOSE = {"Connection": "close"}  # a new connection each: the kernel picks the worker


def _two_workers(two_backends, store, start_router):
    return _router(two_backends, store, start_router, ROUTER_WORKERS="2")


def _served(metrics_text: str) -> tuple[float, float]:
    """router_requests_total and the duration histogram's count, for route ``all``."""
    requests = count = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("route") != "all":
                continue
            if sample.name == "router_requests_total":
                requests += sample.value
            elif sample.name == "router_request_duration_seconds_count":
                count += sample.value
    return requests, count


def _by_worker(url: str, path: str, headers: dict | None = None) -> dict[str, list]:
    """Ask ``path`` on new connections until both workers have answered (by their
    request ids' per-process prefix): each worker's answers."""
    seen: dict[str, list] = {}
    for _ in range(200):
        answer = procs.http.get(url + path, headers={**CLOSE, **(headers or {})})
        assert answer.status_code == 200, answer.text
        seen.setdefault(answer.headers["X-Request-ID"][:16], []).append(answer)
        if len(seen) == 2:
            return seen
    raise AssertionError(f"only one worker answered {path} in 200 tries")


def _workers_of(router: procs.Proc) -> list[int]:
    pid = router.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def test_each_worker_reports_what_all_workers_served(two_backends, store, start_router):
    router = _two_workers(two_backends, store, start_router)
    answers = [procs.http.get(router.url + f"/x/{i}", headers=CLOSE) for i in range(40)]
    assert all(a.status_code == 200 for a in answers)
    served_by = {a.headers["X-Request-ID"][:16] for a in answers}
    assert len(served_by) == 2  # both workers served some
    time.sleep(0.6)  # a poll (0.2 s here) publishes each worker's figures

    for answers in _by_worker(router.url, "/metrics").values():
        for answer in answers:
            assert _served(answer.text) == (40.0, 40.0)
        assert "router_config_version 1.0" in answers[0].text

    operator = {"X-Strangler-Operator-Token": OPERATOR}
    for answers in _by_worker(router.url, "/_strangler/api/status", operator).values():
        status = answers[0].json()
        assert status["counts"] == [
            {"route": "all", "backend": "alpha", "requests": 40}
        ]
        assert len(status["workers"]) == 2
        assert {w["version"] for w in status["workers"]} == {1}


def test_a_killed_worker_still_counts_and_the_folder_goes_at_the_end(
    two_backends, store, start_router
):
    router = _two_workers(two_backends, store, start_router)
    # The supervisor's folder for the workers' figures (router.workers).
    (folder,) = Path(tempfile.gettempdir()).glob(
        f"strangler-router-{router.process.pid}-*"
    )
    answers = [procs.http.get(router.url + f"/y/{i}", headers=CLOSE) for i in range(30)]
    assert all(a.status_code == 200 for a in answers)
    time.sleep(0.6)
    victim = _workers_of(router)[1]
    os.kill(victim, signal.SIGKILL)
    time.sleep(0.3)

    # The survivor answers every new connection, with the dead worker's requests counted.
    for _ in range(5):
        answer = procs.http.get(router.url + "/metrics", headers=CLOSE)
        assert _served(answer.text) == (30.0, 30.0)
    status = procs.http.get(
        router.url + "/_strangler/api/status",
        headers={**CLOSE, "X-Strangler-Operator-Token": OPERATOR},
    ).json()
    assert status["counts"][0]["requests"] == 30
    dead = [w for w in status["workers"] if w["pid"] == victim]
    assert dead and dead[0]["alive"] is False

    assert folder.is_dir()
    router.stop()
    assert not folder.exists()
