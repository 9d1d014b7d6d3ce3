"""The monolith and the extracted vote service answer alike on seeded data: a monolith
database seeded with ``seed_polls``, a vote database migrated and filled by the real
``strangler sync backfill vote``, both served by gunicorn, and every request generated for
``/api/votes/**`` replayed with the vote plan's noise rules.
"""

from __future__ import annotations

import json
import os

import pytest

from strangler.cli import main
from strangler.parity.corpus import read_corpus
from tests.integration.parity.stack import (
    ROOT,
    Server,
    admin,
    drop,
    manage,
    query,
    server_url,
    strangler,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

MONOLITH_DB, VOTE_DB = "h_parity_vm", "h_parity_vs"
ROUTER_TOKEN = "parity-vote-router-token"
PASSWORD = "parity-pass-123"
PLAN = ROOT / "migrations_plan" / "vote.yaml"
VOTE_OPERATIONS = {
    "GET /api/votes/",
    "POST /api/votes/",
    "GET /api/votes/{id}/",
    "DELETE /api/votes/{id}/",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("missing service: postgres is not reachable")
    work = tmp_path_factory.mktemp("vote-parity")
    env = {
        **os.environ,
        "STRANGLER_DEV_DEFAULTS": "1",
        "STRANGLER_VAR_DIR": str(
            work / "var"
        ),  # one dev key pair: the service verifies
        "STRANGLER_ROUTER_TOKEN": ROUTER_TOKEN,  # the monolith's tokens
        "DATABASE_CONN_MAX_AGE": "0",
    }
    monolith_url, vote_url = server_url(MONOLITH_DB), server_url(VOTE_DB)
    for name in (MONOLITH_DB, VOTE_DB):
        drop(name)
        admin(f'CREATE DATABASE "{name}"')
    monolith_env = {
        **env,
        "DATABASE_URL": monolith_url,
        "DJANGO_SETTINGS_MODULE": "monolith.config.settings",
    }
    vote_env = {
        **env,
        "DATABASE_URL": vote_url,
        "DJANGO_SETTINGS_MODULE": "extracted.vote_service.config.settings",
    }
    servers: dict[str, Server] = {}
    try:
        manage(monolith_env, "migrate", "-v0")
        manage(monolith_env, "seed_polls", "--users", "12", "--questions", "6",
               "--votes", "30", "--password", PASSWORD, "--seed", "7")  # fmt: skip
        manage(vote_env, "migrate", "-v0", project="extracted/vote_service")
        strangler(env, "sync", "backfill", "vote", "--source-url", monolith_url,
                  "--target-url", vote_url)  # fmt: skip
        # Without this the service's id sequence starts at 1, inside the copied ids, and a
        # dry-run vote fails with a duplicate key (500) where the monolith answers 201.
        strangler(env, "sync", "cutover-sequences", "vote", "--source-url",
                  monolith_url, "--target-url", vote_url)  # fmt: skip
        servers["monolith"] = Server("monolith.config.wsgi", monolith_env,
                                     work / "monolith.log")  # fmt: skip
        servers["vote"] = Server("extracted.vote_service.config.wsgi", vote_env,
                                 work / "vote.log")  # fmt: skip
        for server in servers.values():
            server.wait_ready()
        # The owner of the first vote, who has not voted on the first choice's question:
        # the generated dry-run DELETE of that vote answers 204, the dry-run POST 201.
        [(username,)] = query(
            MONOLITH_DB,
            "SELECT u.username FROM polls_vote v JOIN auth_user u ON u.id = v.user_id "
            "WHERE NOT EXISTS (SELECT 1 FROM polls_vote o WHERE o.user_id = v.user_id "
            "AND o.question_id = (SELECT question_id FROM polls_choice ORDER BY id "
            "LIMIT 1)) ORDER BY v.id LIMIT 1",
        )
        corpus = work / "votes.jsonl"
        base = servers["monolith"].url
        assert main(["parity", "generate", "--schema", f"{base}/api/schema/", "--base",
                     base, "--include", "/api/votes/**", "--out", str(corpus)]) == 0  # fmt: skip
        yield {"servers": servers, "corpus": corpus, "username": username}
    finally:
        for server in servers.values():
            server.stop()
        for name in (MONOLITH_DB, VOTE_DB):
            drop(name)


def run_parity(stack, capsys, *extra: str) -> tuple[int, dict]:
    os.environ["STRANGLER_ROUTER_TOKEN"] = ROUTER_TOKEN
    servers = stack["servers"]
    code = main([
        "parity", "run", "--corpus", str(stack["corpus"]),
        "--primary", servers["monolith"].url, "--candidate", servers["vote"].url,
        "--username", stack["username"], "--password", PASSWORD,
        "--concurrency", "4", "--quiet", "--json", *extra,
    ])  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def by_endpoint(report: dict) -> dict[str, dict]:
    return {e["endpoint"]: e for e in report["endpoints"]}


def test_generated_vote_corpus_holds_only_and_every_vote_operation(stack):
    corpus = read_corpus(stack["corpus"])
    assert {r.endpoint for r in corpus} == VOTE_OPERATIONS
    assert all(r.path.startswith("/api/votes/") for r in corpus)


def test_vote_service_gives_zero_mismatches_over_every_generated_vote_request(
    stack, capsys
):
    votes_before = query(VOTE_DB, "SELECT count(*), max(id) FROM votes_vote")
    code, report = run_parity(stack, capsys, "--rules", str(PLAN))
    assert report["totals"]["mismatched"] == 0, json.dumps(report, indent=1)[:4000]
    assert code == 0 and report["passed"]
    assert report["totals"]["requests"] == len(read_corpus(stack["corpus"]))
    endpoints = by_endpoint(report)
    assert set(endpoints) == VOTE_OPERATIONS
    # Compared, not merely answered: filters, bad filters, pages past the end, unknown
    # ids, auth failures and the dry-run writes all happened.
    statuses = {name: set(e["statuses"]) for name, e in endpoints.items()}
    assert statuses["GET /api/votes/"] == {"200", "400", "404"}
    assert statuses["GET /api/votes/{id}/"] == {"200", "404"}
    assert {"201", "400", "401"} <= statuses["POST /api/votes/"]
    assert {"204", "401", "404"} <= statuses["DELETE /api/votes/{id}/"]
    # The created vote's id came from each side's own sequence; the plan's rule covered it.
    noise = {
        (n["field"], n["source"]) for n in endpoints["POST /api/votes/"]["noise_fields"]
    }
    assert ("/id", "rules") in noise
    assert query(VOTE_DB, "SELECT count(*), max(id) FROM votes_vote") == votes_before


def test_without_the_plan_rules_the_created_vote_differs(stack, capsys):
    code, report = run_parity(stack, capsys)
    assert code == 1
    failing = {e["endpoint"]: e for e in report["endpoints"] if not e["passed"]}
    assert set(failing) == {"POST /api/votes/"}
    assert {(f["field"], f["kind"]) for f in failing["POST /api/votes/"]["fields"]} == {
        ("/id", "value"),
        ("/created_at", "value"),
    }
