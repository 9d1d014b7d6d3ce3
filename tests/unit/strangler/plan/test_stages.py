"""What each stage means for a plan: modes, routes, frozen tables; ownership conventions."""

from __future__ import annotations

import pytest

from strangler.conf import REPO_ROOT
from strangler.plan.actions import routed_config, summary
from strangler.plan.stages import desired, entities, owned_tables
from strangler.plans import load_plan
from strangler.routing.schema import load_config

BILLING = REPO_ROOT / "tests" / "integration" / "plan" / "plans" / "billing.yaml"
VOTE = REPO_ROOT / "migrations_plan" / "vote.yaml"


@pytest.fixture
def billing():
    return load_plan(BILLING)


def test_reference_copies_are_not_owned_and_entity_comes_from_the_table(billing):
    assert [t.source for t in owned_tables(billing)] == ["ledger_invoice"]
    assert entities(billing) == ["invoice"]


def test_vote_plan_owns_votes_only_and_takes_the_entity_from_tombstones():
    vote = load_plan(VOTE)
    assert [t.source for t in owned_tables(vote)] == ["polls_vote"]
    assert entities(vote) == ["vote"]


@pytest.mark.parametrize(
    ("stage", "mono", "svc"),
    [
        ("monolith", "off", "off"),
        ("dual-write", "forward", "reverse"),
        ("reads", "forward", "reverse"),
        ("writes", "reverse", "forward"),
        ("owned", "reverse", "off"),
    ],
)
def test_modes_per_stage(billing, stage, mono, svc):
    want = desired(billing, stage, service_dry_run=True)
    assert want.monolith_modes == {"invoice": mono}
    assert want.service_modes == {"invoice": svc}
    assert want.frozen is (stage == "owned")


def test_routes_move_reads_before_writes(billing):
    read, write = "GET /api/invoices/**", "POST /api/invoices/"
    assert desired(billing, "monolith", service_dry_run=True).routes[write] == {
        "to": "monolith"
    }
    dual = desired(billing, "dual-write", service_dry_run=True).routes
    assert dual[read] == {"to": "monolith"}
    # Writes are not shadowed yet, but the router keeps each user's events for fences.
    assert dual[write] == {"to": "monolith", "shadow": {"to": "billing", "percent": 0}}
    assert desired(billing, "dual-write", service_dry_run=False).routes[write] == {
        "to": "monolith"
    }
    shadow = desired(billing, "shadow", service_dry_run=True).routes
    assert shadow[read] == {
        "to": "monolith",
        "shadow": {"to": "billing", "percent": 100},
    }
    assert shadow[write]["shadow"]["to"] == "billing"
    canary = desired(billing, "canary", service_dry_run=False).routes
    assert canary[read]["canary"] == {"to": "billing", "percent": 10.0, "key": "user"}
    assert "shadow" not in canary[write]  # no write isolation: writes are not shadowed
    reads = desired(billing, "reads", service_dry_run=True).routes
    assert reads[read] == {"to": "billing", "fallback": "monolith"}
    assert reads[write] == {
        "to": "monolith",
        "shadow": {"to": "billing", "percent": 100},
    }
    writes = desired(billing, "writes", service_dry_run=True).routes
    assert writes[write] == {"to": "billing"}
    owned = desired(billing, "owned", service_dry_run=True).routes
    assert owned[read] == {"to": "billing"}  # legacy tables are frozen: no fallback


CONFIG = """
backends:
  monolith: {url: "http://127.0.0.1:9"}
  billing: {url: "http://127.0.0.1:9", dry_run: true}
routes:
  - {name: invoices-list, methods: [GET], path: /api/invoices/, to: monolith}
  - {name: default, methods: ["*"], path: "/**", to: monolith}
"""


def test_routed_config_adopts_matching_routes_and_adds_the_rest(billing):
    config = load_config(CONFIG)
    routes = desired(billing, "reads", service_dry_run=True).routes
    raw = routed_config(config, "billing", routes)
    by_name = {r["name"]: r for r in raw["routes"]}
    assert by_name["invoices-list"]["to"] == "billing"
    assert by_name["billing GET /api/invoices/**"]["fallback"] == "monolith"
    assert by_name["default"] == {
        "name": "default",
        "methods": ["*"],
        "path": "/**",
        "to": "monolith",
    }
    assert config.raw["routes"][0]["to"] == "monolith"  # the live config is not touched
    again = routed_config(load_config_from(raw), "billing", routes)
    assert again == raw  # idempotent: a second run adds nothing


def load_config_from(raw):
    from strangler.routing.schema import dump_config

    return load_config(dump_config(raw))


def test_summary_names_what_changes(billing):
    routes = desired(billing, "canary", service_dry_run=True).routes
    text = summary(billing, "routes", {"routes": routes})
    assert (
        "GET /api/invoices/** → monolith (shadow billing, canary billing 10%)" in text
    )
    dual = desired(billing, "dual-write", service_dry_run=True).routes
    text = summary(billing, "routes", {"routes": dual})
    assert "POST /api/invoices/ → monolith (shadow billing 0%)" in text
