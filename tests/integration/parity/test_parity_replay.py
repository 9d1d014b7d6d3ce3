"""Parity runs against real monolith processes on copies of one seeded PostgreSQL database:
zero mismatches on identical copies, five injected regressions caught and named, noise
covered by rules or baseline calibration, and dry-run POSTs that write nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from strangler.cli import main
from strangler.parity.corpus import CorpusRequest, read_corpus, write_corpus
from strangler.parity.generate import load_schema
from tests.integration.parity.stack import (
    Server,
    admin,
    drop,
    manage,
    query,
    server_url,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

DATABASES = ("h_parity_a", "h_parity_b", "h_parity_c", "h_parity_r")
ROUTER_TOKEN = "parity-test-router-token"
PASSWORD = "parity-pass-123"
RULES = """\
parity:
  endpoints:
    "POST /api/**":
      match: {/id: id, /created_at: iso8601}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Monolith A (primary), B (candidate), C (baseline), R (regression candidate): one
    seeded database copied with CREATE DATABASE ... TEMPLATE, so ids match everywhere."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("missing service: postgres is not reachable")
    work = tmp_path_factory.mktemp("parity")
    base_env = {
        **os.environ,
        "STRANGLER_DEV_DEFAULTS": "1",
        "STRANGLER_VAR_DIR": str(work / "var"),
        "STRANGLER_ROUTER_TOKEN": ROUTER_TOKEN,
        "DATABASE_CONN_MAX_AGE": "0",
        "PARITY_REGRESSION_FILE": str(work / "regression"),
    }
    for name in DATABASES:
        drop(name)
    admin('CREATE DATABASE "h_parity_a"')
    env_a = {**base_env, "DATABASE_URL": server_url("h_parity_a")}
    manage(env_a, "migrate", "-v0")
    manage(env_a, "seed_polls", "--users", "12", "--questions", "6", "--votes", "30",
           "--password", PASSWORD, "--seed", "7")  # fmt: skip
    for name in DATABASES[1:]:
        admin(f'CREATE DATABASE "{name}" TEMPLATE "h_parity_a"')
    # The candidate and the baseline hand out different generated ids than the primary,
    # as a service with its own sequences would.
    for name, shift in (("h_parity_b", 500), ("h_parity_c", 1000), ("h_parity_r", 500)):
        for table in ("polls_question", "polls_choice", "polls_vote"):
            query(
                name,
                f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}) + {shift})",  # noqa: S608 - constant names
            )
    servers = {}
    try:
        for key, database, app in (
            ("a", "h_parity_a", "monolith.config.wsgi"),
            ("b", "h_parity_b", "monolith.config.wsgi"),
            ("c", "h_parity_c", "monolith.config.wsgi"),
            ("r", "h_parity_r", "tests.integration.parity.regressions:application"),
        ):
            env = {**base_env, "DATABASE_URL": server_url(database)}
            servers[key] = Server(app, env, work / f"gunicorn-{key}.log")
        for server in servers.values():
            server.wait_ready()
        # A user who has not voted on the first question, so a replayed vote answers 201.
        [(username,)] = query(
            "h_parity_a",
            "SELECT username FROM auth_user u WHERE NOT EXISTS (SELECT 1 FROM polls_vote v "
            "WHERE v.user_id = u.id AND v.question_id = (SELECT question_id FROM "
            "polls_choice ORDER BY id LIMIT 1)) ORDER BY id LIMIT 1",
        )
        corpus = work / "corpus.jsonl"
        a = servers["a"].url
        assert main(["parity", "generate", "--schema", f"{a}/api/schema/", "--base", a,
                     "--out", str(corpus)]) == 0  # fmt: skip
        rules = work / "vote.yaml"
        rules.write_text("service: vote\n" + RULES)
        yield {"servers": servers, "corpus": corpus, "rules": rules, "work": work,
               "username": username}  # fmt: skip
    finally:
        for server in servers.values():
            server.stop()
        for name in DATABASES:
            drop(name)


def parity_run(
    stack, *extra: str, candidate: str = "b", corpus: Path | None = None, capsys=None
):
    servers = stack["servers"]
    os.environ["STRANGLER_ROUTER_TOKEN"] = ROUTER_TOKEN
    code = main([
        "parity", "run", "--corpus", str(corpus or stack["corpus"]),
        "--primary", servers["a"].url, "--candidate", servers[candidate].url,
        "--username", stack["username"], "--password", PASSWORD,
        "--concurrency", "6", "--quiet", "--json", *extra,
    ])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    return code, report


def endpoint(report, name):
    [found] = [e for e in report["endpoints"] if e["endpoint"] == name]
    return found


def fields(stats) -> set[tuple[str, str]]:
    return {(f["field"], f["kind"]) for f in stats["fields"]}


def test_generated_corpus_covers_every_schema_operation(stack):
    schema = load_schema(stack["servers"]["a"].url + "/api/schema/")
    operations = {
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method in item
    }
    corpus = read_corpus(stack["corpus"])
    assert {r.endpoint for r in corpus} == operations
    queries = [r.query for r in corpus if r.endpoint == "GET /api/votes/"]
    assert {"choice", "question", "user", "page", "page_size"} <= {
        k for q in queries for k in q
    }
    assert any(r.body_raw for r in corpus)  # malformed JSON
    assert any(
        r.headers.get("Authorization", "").startswith("Bearer not-") for r in corpus
    )


def test_identical_copies_give_zero_mismatches(stack, capsys, tmp_path):
    junit, html = tmp_path / "parity.xml", tmp_path / "parity.html"
    code, report = parity_run(stack, "--rules", str(stack["rules"]), "--junit", str(junit),
                              "--html", str(html), capsys=capsys)  # fmt: skip
    assert report["totals"]["mismatched"] == 0, json.dumps(report, indent=1)[:3000]
    assert code == 0 and report["passed"]
    assert report["totals"]["requests"] == len(read_corpus(stack["corpus"]))
    # Generated ids and timestamps of the dry-run POSTs differed, and rules covered them.
    noise = endpoint(report, "POST /api/votes/")["noise_fields"]
    assert {("/id", "rules"), ("/created_at", "rules")} <= {
        (n["field"], n["source"]) for n in noise
    }
    assert 'failures="0"' in junit.read_text() and "PASS" in html.read_text()


def test_uncovered_noise_is_reported_then_calibrated_away_by_a_baseline(stack, capsys):
    code, report = parity_run(stack, capsys=capsys)
    assert code == 1
    assert ("/id", "value") in fields(endpoint(report, "POST /api/votes/"))
    assert ("/created_at", "value") in fields(endpoint(report, "POST /api/votes/"))
    code, report = parity_run(
        stack, "--baseline", stack["servers"]["c"].url, capsys=capsys
    )
    assert report["totals"]["mismatched"] == 0, json.dumps(report, indent=1)[:3000]
    assert code == 0
    proposed = report["proposed_rules"]["endpoints"]["POST /api/votes/"]
    assert proposed["match"] == {"/created_at": "iso8601", "/id": "id"}


@pytest.mark.parametrize(
    ("regression", "name", "expected"),
    [
        (
            "renamed_field",
            "GET /api/votes/",
            {("/results/*/choice", "missing"), ("/results/*/choice_id", "extra")},
        ),
        ("wrong_count", "GET /api/votes/", {("/count", "value")}),
        ("changed_status", "POST /api/votes/", {("status", "status")}),
        ("different_order", "GET /api/votes/", {("/results", "order")}),
        ("missing_page", "GET /api/votes/", {("status", "status")}),
    ],
)
def test_injected_regression_is_caught_and_named(
    stack, capsys, regression, name, expected
):
    votes_only = stack["work"] / "votes.jsonl"
    write_corpus(
        votes_only, [r for r in read_corpus(stack["corpus"]) if "/api/votes/" in r.path]
    )
    (stack["work"] / "regression").write_text(regression)
    try:
        code, report = parity_run(stack, "--rules", str(stack["rules"]), candidate="r",
                                  corpus=votes_only, capsys=capsys)  # fmt: skip
    finally:
        (stack["work"] / "regression").write_text("")
    assert code == 1
    failing = {e["endpoint"] for e in report["endpoints"] if not e["passed"]}
    also_detail = {"GET /api/votes/{id}/"} if regression == "renamed_field" else set()
    assert failing == {name} | also_detail
    stats = endpoint(report, name)
    assert expected <= fields(stats)
    if regression == "missing_page":
        [status] = [f for f in stats["fields"] if f["field"] == "status"]
        assert all("page=2" in s["target"] for s in status["samples"])
        assert status["samples"][0]["difference"]["candidate"] == 404
    if regression == "changed_status":
        [status] = [f for f in stats["fields"] if f["field"] == "status"]
        assert status["samples"][0]["difference"] == {
            "path": "status", "kind": "status", "primary": 201, "candidate": 200,
        }  # fmt: skip


def test_replayed_post_writes_nothing_to_the_candidate(stack, capsys):
    [(choice_id,)] = query("h_parity_b", "SELECT min(id) FROM polls_choice")
    corpus = stack["work"] / "post.jsonl"
    vote = CorpusRequest(
        "POST", "/api/votes/", headers={"Authorization": "strangler-identity:default"},
        body={"choice": choice_id}, endpoint="POST /api/votes/",
    )  # fmt: skip
    write_corpus(corpus, [vote, vote])
    before = {
        db: query(db, "SELECT count(*) FROM polls_vote")
        for db in ("h_parity_a", "h_parity_b")
    }
    state = stack["work"] / "post-state.jsonl"
    code, report = parity_run(stack, "--rules", str(stack["rules"]), "--state", str(state),
                              corpus=corpus, capsys=capsys)  # fmt: skip
    assert code == 0 and report["totals"]["matched"] == 2
    after = {
        db: query(db, "SELECT count(*) FROM polls_vote")
        for db in ("h_parity_a", "h_parity_b")
    }
    assert after == before
    # Both copies answered 201 (a created vote) inside the rolled-back transaction.
    lines = [json.loads(line) for line in state.read_text().splitlines()[1:]]
    for line in lines:
        assert line["candidate"]["status"] == 201
        assert line["candidate"]["headers"]["X-Strangler-Dry-Run"] == "rolled-back"


def test_unsafe_corpus_without_router_token_is_refused(stack, capsys, monkeypatch):
    monkeypatch.delenv("STRANGLER_ROUTER_TOKEN", raising=False)
    servers = stack["servers"]
    code = main(["parity", "run", "--corpus", str(stack["corpus"]), "--primary", servers["a"].url,
                 "--candidate", servers["b"].url, "--username", stack["username"],
                 "--password", PASSWORD])  # fmt: skip
    assert code == 2
    assert "set STRANGLER_ROUTER_TOKEN" in capsys.readouterr().err
