"""The plan engine end to end on real PostgreSQL, driven through the real CLI with a
hypothetical billing plan: every stage forwards and back, refusals that change nothing,
a SIGKILL between two actions, and the lock that keeps two advances apart."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import psycopg2
import pytest

from strangler.routing.store import RouteStore
from strangler.sync.backfill import BackfillOptions, backfill
from strangler.sync.db import connect
from tests.integration.plan.conftest import (
    PAUSE_ENV,
    PLAN_DIR,
    STRANGLER,
    run_sql,
    strangler,
)

pytestmark = pytest.mark.postgres

READS = ("billing GET /api/invoices/", "billing GET /api/invoices/**")
WRITE = "billing POST /api/invoices/"


def modes(url: str) -> dict[str, str]:
    return dict(run_sql(url, "SELECT entity, mode FROM strangler_dualwrite_entitymode"))


def routes(env: dict[str, str]) -> dict[str, dict]:
    live = RouteStore(env["STRANGLER_ROUTER_DIR"]).live()
    return {r["name"]: r for r in live.config.raw["routes"]}


def version(env: dict[str, str]) -> int:
    return RouteStore(env["STRANGLER_ROUTER_DIR"]).current_version()


def snapshot(env: dict[str, str]) -> dict:
    return {
        "mono": modes(env["MONOLITH_DATABASE_URL"]),
        "svc": modes(env["BILLING_DATABASE_URL"]),
        "routes": routes(env),
        "frozen": frozen(env),
    }


def frozen(env: dict[str, str]) -> bool:
    rows = run_sql(
        env["MONOLITH_DATABASE_URL"],
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'strangler_frozen'",
    )
    return rows[0][0] > 0


def plan(*args: str, **kw) -> tuple[int, dict]:
    result = strangler("plan", *args, "--json", **kw)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def do_backfill(env: dict[str, str]) -> None:
    from strangler.plans import load_plan

    billing = load_plan(PLAN_DIR / "billing.yaml")
    source = connect(env["BILLING_LEGACY_DATABASE_URL"], readonly=True, label="source")
    target = connect(env["BILLING_DATABASE_URL"], readonly=False, label="target")
    try:
        backfill(billing, source, target, BackfillOptions())
    finally:
        source.close()
        target.close()


def feed_router(metrics, *, matches: int, mismatches: int = 0, canary: int = 0) -> None:
    for name in (*READS, WRITE):
        metrics.shadow.labels(name, "billing", "match").inc(matches)
        metrics.shadow.labels(name, "billing", "mismatch").inc(mismatches)
    metrics.requests.labels(READS[1], "billing", "GET", "200").inc(canary)
    metrics.requests.labels(READS[1], "monolith", "GET", "200").inc(10 * canary + 1)


def test_billing_plan_goes_through_every_stage_and_back(env, metrics_server):
    _, metrics = metrics_server
    mono, svc = env["MONOLITH_DATABASE_URL"], env["BILLING_DATABASE_URL"]
    seen: dict[str, dict] = {}

    code, status = plan("status", "billing")
    assert code == 0 and status["stage"] == "monolith"
    assert status["next_stage"] == "dual-write" and status["ready"] is True
    assert {g["name"] for g in status["gates"]} >= {"schema_preflight"}

    code, out = plan("advance", "billing", "--reason", "start")
    assert code == 0, out
    assert modes(mono) == {"invoice": "forward"} and modes(svc) == {
        "invoice": "reverse"
    }
    assert routes(env)[READS[1]]["to"] == "monolith"
    seen["dual-write"] = snapshot(env)

    # shadow: the backfill has not run, so the gate refuses and nothing moves
    before = (version(env), snapshot(env))
    code, out = plan("advance", "billing")
    assert code == 1
    failing = {g["name"]: g for g in out["failing"]}
    assert "backfill_complete" in failing
    assert failing["backfill_complete"]["value"] == "0/2 tables"
    assert (version(env), snapshot(env)) == before
    assert plan("status", "billing")[1]["stage"] == "dual-write"

    do_backfill(env)
    code, out = plan("advance", "billing")  # runs a fresh verify: none exists yet
    assert code == 0, out
    gates = {g["name"]: g for g in out["steps"][0]["gates"]}
    assert gates["verify_max_differences"]["value"] == 0
    assert "fresh verify" in gates["verify_max_differences"]["detail"]
    r = routes(env)
    assert r[READS[0]]["shadow"]["to"] == "billing" and r[READS[0]]["to"] == "monolith"
    assert r[WRITE]["shadow"]["to"] == "billing"  # the backend runs writes as dry runs
    # ...so its ids already start past the legacy ids: a dry-run insert cannot collide.
    shadow_next_id = run_sql(
        svc,
        "INSERT INTO billing_invoice (customer_id, amount_cents, issued_at)"
        " VALUES (1, 1, now()) RETURNING id",
    )[0][0]
    assert shadow_next_id > run_sql(mono, "SELECT max(id) FROM ledger_invoice")[0][0]
    run_sql(svc, "DELETE FROM billing_invoice WHERE id = %s", (shadow_next_id,))
    seen["shadow"] = snapshot(env)

    # canary: no shadow comparisons yet → "no data", refused
    code, out = plan("advance", "billing")
    assert code == 1
    parity = {g["name"]: g for g in out["failing"]}["parity_min_rate"]
    assert parity["detail"].startswith("no data:") and parity["value"] is None
    feed_router(metrics, matches=10, mismatches=1)
    code, out = plan("advance", "billing")
    assert code == 1  # 30/33 matched is under 0.99
    feed_router(metrics, matches=200)
    code, out = plan("advance", "billing")
    assert code == 0, out
    assert routes(env)[READS[1]]["canary"] == {
        "to": "billing",
        "percent": 10.0,
        "key": "user",
    }
    seen["canary"] = snapshot(env)

    code, out = plan("advance", "billing")
    assert code == 1
    assert {g["name"] for g in out["failing"]} == {
        "canary_min_requests",
        "canary_max_error_rate_ratio",
    }
    feed_router(metrics, matches=0, canary=50)
    metrics.requests.labels(READS[1], "billing", "GET", "502").inc(1)
    code, out = plan("advance", "billing")  # 1/51 errors against a clean monolith
    assert code == 1
    (ratio,) = out["failing"]
    assert ratio["name"] == "canary_max_error_rate_ratio" and ratio["value"] > 1.5
    metrics.requests.labels(READS[1], "monolith", "GET", "500").inc(10)
    code, out = plan("advance", "billing")  # now both fail about 2% of reads
    assert code == 0, out
    r = routes(env)
    assert r[READS[1]]["to"] == "billing" and r[READS[1]]["fallback"] == "monolith"
    assert r[WRITE]["to"] == "monolith"
    seen["reads"] = snapshot(env)

    legacy_max = run_sql(mono, "SELECT max(id) FROM ledger_invoice")[0][0]
    code, out = plan("advance", "billing", "--to", "writes")
    assert code == 0, out
    assert modes(mono) == {"invoice": "reverse"} and modes(svc) == {
        "invoice": "forward"
    }
    assert routes(env)[WRITE]["to"] == "billing"
    next_id = run_sql(
        svc,
        "INSERT INTO billing_invoice (customer_id, amount_cents, issued_at)"
        " VALUES (1, 1, now()) RETURNING id",
    )[0][0]
    assert next_id > legacy_max + 100
    run_sql(svc, "DELETE FROM billing_invoice WHERE id = %s", (next_id,))
    seen["writes"] = snapshot(env)

    code, out = plan("advance", "billing")
    assert code == 0, out
    assert frozen(env)
    with pytest.raises(psycopg2.Error, match="ledger_invoice is frozen"):
        run_sql(mono, "UPDATE ledger_invoice SET amount_cents = 0 WHERE id = 1")
    run_sql(mono, "UPDATE ledger_customer SET name = 'reference tables stay writable'")
    seen["owned"] = snapshot(env)

    result = strangler("plan", "advance", "billing")
    assert (
        result.returncode == 2 and "already at the last stage 'owned'" in result.stderr
    )

    # A write made while owned exists only in the service: going back would lose it.
    written_while_owned = run_sql(
        svc,
        "INSERT INTO billing_invoice (customer_id, amount_cents, issued_at)"
        " VALUES (1, 7, now()) RETURNING id",
    )[0][0]
    before = (version(env), snapshot(env))
    code, out = plan("rollback", "billing")
    assert code == 1, out
    (current,) = out["failing"]
    assert current["name"] == "legacy_equals_service" and current["value"] >= 1
    assert "exist only in the service" in current["detail"]
    assert (version(env), snapshot(env)) == before
    assert plan("status", "billing")[1]["stage"] == "owned"
    run_sql(svc, "DELETE FROM billing_invoice WHERE id = %s", (written_while_owned,))

    # back down, one stage at a time: each stage's modes, routes and freezing come back
    code, out = plan("rollback", "billing", "--reason", "test")
    assert code == 0, out
    assert snapshot(env) == seen["writes"]
    run_sql(mono, "UPDATE ledger_invoice SET amount_cents = 1 WHERE id = 1")

    run_sql(
        svc,
        "INSERT INTO strangler_dualwrite_outboxevent (event_id, type, aggregate_type,"
        " aggregate_id, seq, envelope, created_at) VALUES (gen_random_uuid(),"
        " 'invoice.created', 'invoice', '1', 1, '{}', now() - interval '5 seconds')",
    )
    before = (version(env), snapshot(env))
    code, out = plan("rollback", "billing")
    assert code == 1
    (drained,) = out["failing"]
    assert drained["name"] == "reverse_lag_drained" and drained["value"] >= 5
    assert (version(env), snapshot(env)) == before
    run_sql(svc, "UPDATE strangler_dualwrite_outboxevent SET sent_at = now()")

    for stage in ("reads", "canary", "shadow", "dual-write", "monolith"):
        code, out = plan("rollback", "billing")
        assert code == 0, out
        assert out["to"] == stage
        if stage != "monolith":
            assert snapshot(env) == seen[stage], stage
    # Back at the start: modes explicitly off (the default) and every plan route to the
    # monolith with nothing shadowed, canaried or falling back.
    assert modes(mono) == modes(svc) == {"invoice": "off"}
    plan_routes = {k: v for k, v in routes(env).items() if k.startswith("billing ")}
    assert set(plan_routes) == {*READS, WRITE}
    assert all(
        set(r) == {"name", "methods", "path", "to"} for r in plan_routes.values()
    )
    assert {r["to"] for r in plan_routes.values()} == {"monolith"}

    result = strangler("plan", "rollback", "billing")
    assert result.returncode == 2 and "nothing to roll back" in result.stderr

    history = plan("history", "billing")[1]["history"]
    outcomes = [(h["kind"], h["to"], h["outcome"]) for h in history]
    assert outcomes.count(("advance", "shadow", "refused")) == 1
    assert ("rollback", "reads", "refused") in outcomes
    assert ("rollback", "writes", "refused") in outcomes
    completed = [(k, t) for k, t, o in outcomes if o == "completed"]
    assert completed == [
        ("advance", "dual-write"),
        ("advance", "shadow"),
        ("advance", "canary"),
        ("advance", "reads"),
        ("advance", "writes"),
        ("advance", "owned"),
        ("rollback", "writes"),
        ("rollback", "reads"),
        ("rollback", "canary"),
        ("rollback", "shadow"),
        ("rollback", "dual-write"),
        ("rollback", "monolith"),
    ]
    assert all(h["who"] == "tester" for h in history)
    assert history[0]["reason"] == "start"


def _paused_advance(extra: dict[str, str], *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*STRANGLER, "plan", "advance", "billing", *args],
        env={**os.environ, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:
        if "paused after action" in line:
            return proc
    proc.wait()
    raise AssertionError(f"advance never paused (exit {proc.returncode})")


def test_advance_killed_between_actions_is_explained_then_completed(env):
    mono, svc = env["MONOLITH_DATABASE_URL"], env["BILLING_DATABASE_URL"]
    v0 = version(env)
    proc = _paused_advance({PAUSE_ENV: "2"}, "--reason", "crash test")
    try:
        # the paused advance holds the lock: a second one is refused, not interleaved
        second = strangler("plan", "advance", "billing")
        assert second.returncode == 1 and "another `strangler plan`" in second.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    code, status = plan("status", "billing")
    assert code == 3
    pending = status["pending"]
    assert (pending["from_stage"], pending["to_stage"]) == ("monolith", "dual-write")
    assert [a["done"] for a in pending["actions"]] == [True, True, False]
    assert "stopped after 2 of 3 action(s)" in pending["explanation"]
    assert modes(mono) == {"invoice": "forward"} and modes(svc) == {
        "invoice": "reverse"
    }
    assert version(env) == v0  # the router action had not run

    text = strangler("plan", "status", "billing")
    assert "INCOMPLETE advance monolith → dual-write" in text.stdout
    assert "[todo] router:" in text.stdout

    code, out = plan("advance", "billing")
    assert code == 0, out
    assert plan("status", "billing")[1]["stage"] == "dual-write"
    assert version(env) == v0 + 1
    history = plan("history", "billing")[1]["history"]
    assert history[-1]["outcome"] == "completed after an interruption"
    assert history[-1]["reason"] == "crash test"


def test_rollback_undoes_an_advance_killed_halfway(env):
    mono, svc = env["MONOLITH_DATABASE_URL"], env["BILLING_DATABASE_URL"]
    proc = _paused_advance({PAUSE_ENV: "1"})
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert modes(mono) == {"invoice": "forward"}

    code, out = plan("rollback", "billing", "--dry-run")
    assert code == 0 and out["undoing_incomplete_advance"] is True
    assert modes(mono) == {"invoice": "forward"}

    code, out = plan("rollback", "billing")
    assert code == 0, out
    assert modes(mono) == {"invoice": "off"} and modes(svc) == {"invoice": "off"}
    code, status = plan("status", "billing")
    assert code == 0 and status["stage"] == "monolith" and status["pending"] is None
    outcomes = [h["outcome"] for h in plan("history", "billing")[1]["history"]]
    assert outcomes == ["abandoned", "completed"]


def test_dry_run_and_bad_input_change_nothing(env):
    v0 = version(env)
    code, out = plan("advance", "billing", "--dry-run")
    assert code == 0 and out["dry_run"] is True
    assert any("router:" in c for c in out["steps"][0]["changes"])
    assert version(env) == v0 and modes(env["MONOLITH_DATABASE_URL"]) == {}

    for args, message in (
        (("advance", "nope"), "unknown service 'nope'"),
        (("advance", "billing", "--to", "moon"), "unknown stage 'moon'"),
        (("advance", "billing", "--to", "monolith"), "is not after the current stage"),
        (("rollback", "billing"), "nothing to roll back"),
        (("history", "nope"), "unknown service 'nope'"),
    ):
        result = strangler("plan", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
    assert version(env) == v0 and plan("history", "billing")[1]["history"] == []


def test_missing_database_is_a_refusal_naming_it(env):
    v0 = version(env)
    code, out = plan("advance", "billing", extra_env={"MONOLITH_DATABASE_URL": ""})
    assert code == 1
    failing = {g["name"]: g["detail"] for g in out["failing"]}
    assert "MONOLITH_DATABASE_URL is not set" in failing["preflight: monolith database"]
    assert version(env) == v0 and modes(env["BILLING_DATABASE_URL"]) == {}
