"""Shadow traffic: the client gets the primary's answer, the shadow's answer is compared and
recorded (matches too, as parity shadow records that ``parity report --shadow`` rates), unsafe
methods go out only as authenticated dry runs, and a shadowed POST to the real monolith on
PostgreSQL creates no row."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from strangler.cli import main
from strangler.parity.records import read_records
from tests.integration.router import procs
from tests.integration.router.conftest import config_text


def record_lines(store_root: Path, count: int, timeout: float = 10.0) -> list[str]:
    """The shadow record lines, once at least ``count`` were written."""
    path = store_root / "shadow.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [x for x in path.read_text().splitlines() if x]
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"expected {count} shadow records in {path}")


def records(store_root: Path, count: int) -> list[dict]:
    return [json.loads(line) for line in record_lines(store_root, count)]


def test_shadow_get_is_compared_and_mismatch_recorded(
    two_backends, store, start_router
):
    alpha, beta = two_backends
    routes = "  - {name: reads, methods: [GET], path: /**, to: alpha, shadow: beta}\n"
    store.commit(
        config_text({"alpha": alpha.url, "beta": beta.url}, routes), action="t", why="t"
    )
    router = start_router()
    response = procs.http.get(
        router.url + "/api/votes/?page=2",
        headers={"Authorization": "Bearer secret-token", "Accept": "application/json"},
    )
    assert response.json()["backend"] == "alpha"
    assert response.headers["X-Strangler-Route"] == "reads; backend=alpha; version=1"
    [record] = records(store.root, 1)
    assert (record["route"], record["method"], record["path"]) == (
        "reads",
        "GET",
        "/api/votes/?page=2",
    )
    assert (record["primary"]["backend"], record["shadow"]["backend"]) == (
        "alpha",
        "beta",
    )
    assert json.loads(record["primary"]["body"])["backend"] == "alpha"
    assert json.loads(record["shadow"]["body"])["backend"] == "beta"
    # Whole response headers, and the request's with credentials redacted.
    assert record["primary"]["headers"]["x-backend"] == "alpha"
    assert record["shadow"]["headers"]["x-backend"] == "beta"
    sent = record["request"]["headers"]
    assert sent["authorization"] == "[redacted]"
    assert sent["accept"] == "application/json"
    assert record["dry_run"] is False
    assert record["comparison"]["matched"] is False
    paths = {d["path"] for d in record["comparison"]["differences"]}
    assert "/backend" in paths
    metrics = procs.http.get(router.url + "/metrics").text
    assert (
        'router_shadow_total{backend="beta",result="mismatch",route="reads"} 1.0'
        in metrics
    )


def test_matches_are_recorded_so_the_shadow_report_rates_match_the_router(
    two_backends, store, start_router, tmp_path, capsys
):
    alpha, beta = two_backends
    twin = procs.backend("alpha", tmp_path / "twin")  # answers exactly as alpha does
    (tmp_path / "twin").mkdir()
    routes = (
        "  - {name: same, methods: [GET], path: /same/**, to: alpha, shadow: twin}\n"
        "  - {name: other, methods: [GET], path: /other/**, to: alpha, shadow: beta}\n"
    )
    # Each backend echoes the Host it was called with; the shadow's plan rules ignore it.
    plans = tmp_path / "plans"
    plans.mkdir()
    for name in ("twin", "beta"):
        (plans / f"{name}.yaml").write_text(
            "parity:\n  defaults: {ignore: [/headers/host]}\n"
        )
    with procs.running(twin):
        backends = {"alpha": alpha.url, "beta": beta.url, "twin": twin.url}
        store.commit(config_text(backends, routes), action="t", why="t")
        router = start_router(STRANGLER_PLAN_DIR=str(plans))
        for path in ("/same/1", "/same/2", "/same/3", "/other/1", "/other/2"):
            assert procs.http.get(router.url + path).status_code == 200
        lines = record_lines(store.root, 5)
    assert len(lines) == 5
    metrics = procs.http.get(router.url + "/metrics").text
    for route, backend, result, count in (
        ("same", "twin", "match", 3),
        ("other", "beta", "mismatch", 2),
    ):
        series = f'backend="{backend}",result="{result}",route="{route}"'
        assert f"router_shadow_total{{{series}}} {count}.0" in metrics

    shadow = str(store.root / "shadow.jsonl")
    code = main(["parity", "report", "--shadow", shadow, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["source"] == "shadow"
    assert report["totals"] == {
        "requests": 5, "matched": 3, "mismatched": 2, "noise": 5,
    }  # fmt: skip
    # New rules recompute every comparison from the stored answers, headers included:
    # with the body's backend name ignored, only the x-backend header still differs.
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "parity:\n  headers: [content-type, x-backend]\n"
        "  defaults: {ignore: [/backend, /headers/host]}\n"
    )
    code = main(
        ["parity", "report", "--shadow", shadow, "--rules", str(rules), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["totals"]["matched"] == 3 and report["totals"]["mismatched"] == 2
    differing = {
        (f["field"], f["kind"]) for e in report["endpoints"] for f in e["fields"]
    }
    assert differing == {("header:x-backend", "header")}


def test_unsafe_shadow_goes_out_as_an_authenticated_dry_run(
    two_backends, store, start_router
):
    alpha, beta = two_backends
    routes = "  - {name: writes, path: /**, to: alpha, shadow: beta}\n"
    store.commit(
        config_text({"alpha": alpha.url, "beta": beta.url}, routes), action="t", why="t"
    )
    router = start_router()
    response = procs.http.post(router.url + "/api/votes/", data=b'{"choice": 1}')
    assert response.json()["backend"] == "alpha"
    assert "x-strangler-dry-run" not in response.json()["headers"]
    [record] = records(store.root, 1)
    assert record["dry_run"] is True
    shadow_saw = json.loads(record["shadow"]["body"])
    assert shadow_saw["headers"]["x-strangler-dry-run"] == "1"
    assert shadow_saw["headers"]["x-strangler-router-token"] == procs.ROUTER_TOKEN
    assert shadow_saw["body_len"] == len(b'{"choice": 1}')
    # The record is the parity format: it reads back as a ShadowRecord.
    [read] = read_records(store.root / "shadow.jsonl")
    assert read.dry_run and read.method == "POST" and read.shadow_backend == "beta"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_shadowed_post_creates_no_row_in_the_shadow_database(
    tmp_path, store, start_router, user
):
    from django.db import connection

    from monolith.polls.models import Question
    from strangler.auth.tokens import issue_token

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    db = connection.settings_dict
    port = procs.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "STRANGLER_ROUTER_TOKEN": procs.ROUTER_TOKEN,
        "DJANGO_SETTINGS_MODULE": "monolith.config.settings",
    }
    monolith = procs.Proc(
        [sys.executable, "-m", "gunicorn", "monolith.config.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env, f"http://127.0.0.1:{port}", tmp_path / "monolith.log",
    )  # fmt: skip
    primary = procs.backend("primary", tmp_path)
    with procs.running(monolith, primary, ready={monolith: ("/healthz", (200,))}):
        routes = (
            "  - {name: questions, methods: [POST], path: /api/questions/, to: primary,"
            " shadow: monolith}\n"
            "  - {name: direct, methods: [POST], path: /direct/**, to: monolith}\n"
        )
        text = config_text({"primary": primary.url, "monolith": monolith.url}, routes)
        store.commit(text, action="t", why="t")
        router = start_router()
        auth = {"Authorization": f"Bearer {issue_token(user.pk)['access']}"}
        body = {"question_text": "Shadowed, never stored?"}
        response = procs.http.post(
            router.url + "/api/questions/", json=body, headers=auth
        )
        assert response.status_code == 200
        assert response.json()["backend"] == "primary"
        [record] = records(store.root, 1)
        assert record["dry_run"] is True
        assert record["shadow"]["status"] == 201, record["shadow"]
        assert (
            json.loads(record["shadow"]["body"])["question_text"]
            == body["question_text"]
        )
        assert Question.objects.count() == 0
        # The same POST sent to the monolith directly (no dry run) does write: the check
        # above would have seen a row.
        direct = procs.http.post(
            monolith.url + "/api/questions/", json=body, headers=auth
        )
        assert direct.status_code == 201
        assert Question.objects.count() == 1
