"""Shadow traffic: the client gets the primary's answer, the shadow's answer is compared and
recorded (matches too, as parity shadow records that ``parity report --shadow`` rates), unsafe
methods go out only as authenticated dry runs, and a shadowed POST to the real monolith on
PostgreSQL creates no row. A read that raced the event lag is rechecked and converges."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def test_unsafe_shadow_is_sent_after_the_primary_answered(
    tmp_path, store, start_router
):
    """The dry run leaves only once the primary has answered, so it can carry the events
    of that answer (X-Strangler-Overtake) and never runs before the primary's write."""
    shadow = procs.backend("beta", tmp_path)
    with procs.running(shadow):
        primary = procs.backend("alpha", tmp_path, PEER_URL=shadow.url)
        with procs.running(primary):
            routes = "  - {name: writes, path: /**, to: alpha, shadow: beta}\n"
            backends = {"alpha": primary.url, "beta": shadow.url}
            store.commit(config_text(backends, routes), action="t", why="t")
            router = start_router()
            response = procs.http.post(router.url + "/handshake?token=t1", data=b"{}")
            assert response.status_code == 200
            assert response.json()["peer_saw_it_first"] is False
            [record] = records(store.root, 1)
            assert record["dry_run"] is True
            saw = json.loads(record["shadow"]["body"])["headers"]
            assert saw["x-strangler-dry-run"] == "1"
            # The primary got the router's token (so it can report its events); the
            # client's copy of a fence header never reaches either backend.
            assert response.json()["headers"]["x-strangler-router-token"] == (
                procs.ROUTER_TOKEN
            )
            fenced = procs.http.post(
                router.url + "/handshake?token=t2",
                data=b"{}",
                headers={"X-Strangler-Fence": "vote:1@1"},
            )
            assert "x-strangler-fence" not in fenced.json()["headers"]
            [_, second] = records(store.root, 2)
            assert (
                "x-strangler-fence"
                not in json.loads(second["shadow"]["body"])["headers"]
            )


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


class Item:
    """One item a backend serves at ``/api/items/1/``. With ``lag``, a write is applied
    ``lag`` seconds after the first read that sees it pending: the router's first
    comparison always meets stale data, however loaded the machine, and any read after
    the lag meets fresh data, like a service behind the outbox and the consumer."""

    def __init__(self, value: int, lag: float = 0.0) -> None:
        self.value, self.lag = value, lag
        self.pending: int | None = None
        self.stale_since: float | None = None
        self.reads = 0
        self.lock = threading.Lock()

    def write(self, value: int) -> None:
        with self.lock:
            if self.lag:
                self.pending, self.stale_since = value, None
            else:
                self.value = value

    def read(self) -> int:
        with self.lock:
            self.reads += 1
            if self.pending is not None:
                now = time.monotonic()
                if self.stale_since is None:
                    self.stale_since = now
                elif now - self.stale_since >= self.lag:
                    self.value, self.pending = self.pending, None
            return self.value


@contextmanager
def serving(item: Item) -> Iterator[str]:
    """An HTTP/1.1 keep-alive backend in this process; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps({"id": 1, "value": item.read()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def item_router(store, start_router, primary: Item, shadow: Item, recheck: float):
    with serving(primary) as primary_url, serving(shadow) as shadow_url:
        routes = (
            "  - {name: items, methods: [GET, POST], path: /api/items/**,"
            " to: monolith, shadow: vote}\n"
        )
        text = config_text(
            {"monolith": primary_url, "vote": shadow_url},
            routes,
            f"  shadow_recheck_seconds: {recheck}",
        )
        store.commit(text, action="t", why="t")
        yield start_router()


def shadow_series(router, result: str) -> str:
    metrics = procs.http.get(router.url + "/metrics").text
    series = f'router_shadow_total{{backend="vote",result="{result}",route="items"}}'
    found = [line for line in metrics.splitlines() if line.startswith(series)]
    return found[0].split()[-1] if found else "0"


def test_read_racing_the_event_lag_converges_and_rates_as_a_match(
    store, start_router, capsys
):
    monolith, vote = Item(0), Item(0, lag=0.2)
    with item_router(store, start_router, monolith, vote, recheck=0.5) as router:
        # A vote cast on the monolith; its event reaches the service later.
        monolith.write(1)
        vote.write(1)
        response = procs.http.get(router.url + "/api/items/1/")
        assert response.json()["value"] == 1
        [record] = records(store.root, 1)
        assert shadow_series(router, "converged") == "1.0"
        assert shadow_series(router, "mismatch") == "0"
    assert record["comparison"]["matched"] is True
    assert json.loads(record["shadow"]["body"])["value"] == 1
    assert record["first"]["comparison"]["matched"] is False
    assert json.loads(record["first"]["shadow"]["body"])["value"] == 0
    assert json.loads(record["first"]["primary"]["body"])["value"] == 1
    assert (monolith.reads, vote.reads) == (2, 2)
    code = main(["parity", "report", "--shadow", str(store.root / "shadow.jsonl")])
    assert code == 0
    assert "1 requests, 1 matched, 0 mismatched" in capsys.readouterr().out


def test_difference_that_persists_past_the_recheck_is_a_mismatch_with_both_pairs(
    store, start_router
):
    monolith, vote = Item(1), Item(2)
    with item_router(store, start_router, monolith, vote, recheck=0.2) as router:
        procs.http.get(router.url + "/api/items/1/")
        [record] = records(store.root, 1)
        assert shadow_series(router, "mismatch") == "1.0"
        assert shadow_series(router, "converged") == "0"
    assert record["comparison"]["matched"] is False
    assert record["first"]["comparison"]["matched"] is False
    assert json.loads(record["shadow"]["body"])["value"] == 2
    assert json.loads(record["first"]["shadow"]["body"])["value"] == 2


def test_with_recheck_disabled_a_lagging_read_is_a_mismatch_at_once(
    store, start_router
):
    monolith, vote = Item(0), Item(0, lag=0.2)
    with item_router(store, start_router, monolith, vote, recheck=0) as router:
        monolith.write(1)
        vote.write(1)
        procs.http.get(router.url + "/api/items/1/")
        [record] = records(store.root, 1)
        assert shadow_series(router, "mismatch") == "1.0"
    assert record["comparison"]["matched"] is False and "first" not in record
    assert (monolith.reads, vote.reads) == (1, 1)


def test_unsafe_shadows_are_never_rechecked(store, start_router):
    monolith, vote = Item(1), Item(2)
    with item_router(store, start_router, monolith, vote, recheck=0.2) as router:
        procs.http.post(router.url + "/api/items/1/", json={"value": 1})
        [record] = records(store.root, 1)
        assert shadow_series(router, "mismatch") == "1.0"
    assert record["dry_run"] is True and "first" not in record
    assert record["comparison"]["matched"] is False
