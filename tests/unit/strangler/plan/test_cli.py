"""CLI input checks on the embedded default (file store): errors name what is wrong,
exit 2, and write nothing."""

from __future__ import annotations

import json

import pytest

from strangler.cli import main
from strangler.conf import REPO_ROOT

PLANS = REPO_ROOT / "tests" / "integration" / "plan" / "plans"


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.delenv("STRANGLER_CONTROL_DATABASE_URL", raising=False)
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("STRANGLER_PLAN_DIR", str(PLANS))
    monkeypatch.setenv("STRANGLER_ROUTER_DIR", str(tmp_path / "router"))
    for name in (
        "MONOLITH_DATABASE_URL",
        "BILLING_DATABASE_URL",
        "STRANGLER_ROUTER_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("BILLING_LEGACY_DATABASE_URL", raising=False)
    return tmp_path


def test_unknown_service_names_the_known_plans(files, capsys):
    assert main(["plan", "status", "nope"]) == 2
    assert "unknown service 'nope'" in capsys.readouterr().err


def test_broken_plan_is_bad_input_naming_the_line(files, tmp_path, capsys):
    broken = tmp_path / "billing.yaml"
    broken.write_text(
        PLANS.joinpath("billing.yaml").read_text().replace("key: id", "kee: id", 1)
    )
    assert main(["plan", "advance", "billing", "--plan", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken plan" in err and "kee" in err
    assert not (files / "var" / "plan").exists()


def test_without_data_sources_every_gate_fails_with_no_data(files, capsys):
    assert main(["plan", "status", "billing", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["stage"] == "monolith" and status["ready"] is False
    gates = {g["name"]: g for g in status["gates"]}
    assert gates["schema_preflight"]["passed"] is False
    assert gates["schema_preflight"]["detail"].startswith(
        "no data: BILLING_LEGACY_DATABASE_URL"
    )
    assert "no router config yet" in gates["preflight: router"]["detail"]


def test_refused_advance_writes_history_but_keeps_the_stage(files, capsys):
    assert main(["plan", "advance", "billing", "--json", "--actor", "ana"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["refused"] == "monolith → dual-write"
    assert main(["plan", "status", "billing", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stage"] == "monolith"
    assert main(["plan", "history", "billing", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["history"]
    assert (entry["who"], entry["outcome"]) == ("ana", "refused")


def test_control_url_must_be_postgres(files, monkeypatch, capsys):
    monkeypatch.setenv("STRANGLER_CONTROL_DATABASE_URL", "sqlite:///x.db")
    assert main(["plan", "status", "billing"]) == 2
    assert "must be PostgreSQL" in capsys.readouterr().err
