"""Plan files: the shipped plans load, a non-polls plan loads, and every kind of mistake is
reported with its file, line, key and fix."""

from __future__ import annotations

import textwrap

import pytest

from strangler.conf import REPO_ROOT
from strangler.plans import STAGES, PlanError, load_plan, load_plan_text

BILLING = textwrap.dedent(
    """\
    service: billing
    version: 3
    databases:
      source: LEGACY_DATABASE_URL
      target: BILLING_DATABASE_URL
    tables:
      - source: shop_invoice
        target: billing_invoice
        key: number
        columns:
          - source: number
          - source: customer
            target: customer_name
          - source: total
            type: numeric(12,2)
          - issued_on
    endpoints:
      read: ["GET /api/invoices/**"]
      write: ["POST /api/invoices/"]
    stages:
      - name: monolith
      - name: shadow
        gates: {verify_max_age_seconds: 60}
      - name: owned
    """
)


def issues_of(text: str) -> list:
    with pytest.raises(PlanError) as caught:
        load_plan_text(text, "plan.yaml")
    return caught.value.issues


@pytest.mark.parametrize("service", ["vote", "choice"])
def test_shipped_plans_load_with_every_stage(service):
    plan = load_plan(REPO_ROOT / "migrations_plan" / f"{service}.yaml")
    assert plan.service == service
    assert [s.name for s in plan.stages] == list(STAGES)
    assert plan.source_env == "LEGACY_DATABASE_URL"
    assert all(t.tombstones is not None for t in plan.tables)


def test_vote_plan_maps_the_agreed_tables():
    plan = load_plan(REPO_ROOT / "migrations_plan" / "vote.yaml")
    assert [(t.source, t.target) for t in plan.tables] == [
        ("polls_vote", "votes_vote"),
        ("polls_choice", "votes_choiceref"),
    ]
    assert [c.source for c in plan.table("votes_choiceref").columns] == [
        "id",
        "question_id",
    ]


def test_a_non_polls_plan_loads_with_renamed_and_cast_columns():
    plan = load_plan_text(BILLING, "billing.yaml")
    table = plan.table("billing_invoice")
    assert table.key == "number"
    assert [(c.source, c.target, c.type) for c in table.columns] == [
        ("number", "number", None),
        ("customer", "customer_name", None),
        ("total", "total", "numeric(12,2)"),
        ("issued_on", "issued_on", None),
    ]
    assert [s.name for s in plan.stages] == ["monolith", "shadow", "owned"]
    assert plan.stage("shadow").gates == {"verify_max_age_seconds": 60}


def test_invalid_yaml_names_the_line():
    (issue,) = issues_of("service: vote\nversion: 1\ntables: [\n  - a\n")
    assert issue.file == "plan.yaml" and issue.line is not None
    assert "not valid YAML" in issue.problem


def test_unknown_key_suggests_the_right_one_with_its_line():
    text = BILLING.replace("    key: number\n", "    kee: number\n")
    found = {i.key: i for i in issues_of(text)}
    assert found["tables[0].kee"].line == 9
    assert "did you mean 'key'" in found["tables[0].kee"].fix
    assert "tables[0].key" in found  # and the required key is reported missing


def test_key_that_is_not_a_column_is_reported_at_its_line():
    (issue,) = issues_of(BILLING.replace("key: number", "key: id"))
    assert (issue.key, issue.line) == ("tables[0].key", 9)
    assert "not one of the columns" in issue.problem
    assert str(issue).startswith("plan.yaml:9: tables[0].key:")


def test_stage_out_of_order_is_refused():
    text = BILLING.replace(
        "  - name: monolith\n  - name: shadow", "  - name: shadow\n  - name: monolith"
    )
    keys = {(i.key, i.line) for i in issues_of(text)}
    assert ("stages[1].name", 22) in keys


def test_gate_out_of_range_and_unknown_gate():
    text = BILLING.replace(
        "gates: {verify_max_age_seconds: 60}",
        "gates: {verify_max_age_seconds: -1, parity_min_rat: 0.9}",
    )
    found = {i.key: i for i in issues_of(text)}
    assert "out of range" in found["stages[1].gates.verify_max_age_seconds"].problem
    assert found["stages[1].gates.verify_max_age_seconds"].line == 23
    assert "parity_min_rate" in found["stages[1].gates.parity_min_rat"].fix


def test_duplicate_key_is_reported_instead_of_silently_dropped():
    (issue,) = issues_of(BILLING.replace("version: 3\n", "version: 3\nversion: 4\n"))
    assert (issue.key, issue.line) == ("version", 3)


def test_bad_endpoint_env_var_and_version_are_all_listed_at_once():
    text = (
        BILLING.replace("GET /api/invoices/**", "FETCH /api/invoices/")
        .replace("BILLING_DATABASE_URL", "billing-url")
        .replace("version: 3", "version: three")
    )
    keys = {i.key for i in issues_of(text)}
    assert {"endpoints.read[0]", "databases.target", "version"} <= keys


def test_parity_rules_are_validated_by_the_compare_layer():
    pytest.importorskip("strangler.compare.rules")
    text = BILLING + 'parity:\n  endpoints:\n    "GET /x/":\n      ignoer: []\n'
    (issue,) = issues_of(text)
    assert issue.key.startswith("parity")
    assert issue.line is not None and issue.line >= 25


def test_missing_file_names_it_and_the_fix(tmp_path):
    with pytest.raises(PlanError) as caught:
        load_plan(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(caught.value) and "--plan" in str(caught.value)
