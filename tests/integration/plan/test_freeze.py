"""Freezing legacy tables at ``owned``: a trigger refuses every write, naming the table and
the plan, on PostgreSQL and on the embedded SQLite default alike; unfreezing gives the
writes back; both are idempotent (a transition re-run after a crash)."""

from __future__ import annotations

import sqlite3

import psycopg2
import pytest

from strangler.plan.actions import apply_freeze, is_frozen
from strangler.sync.db import connect
from tests.integration.plan.conftest import run_sql

NOTE = "vote plan is at owned; the vote service owns this table"


def writes(kind: str, url: str) -> list[str]:
    """Try an insert, an update and a delete on ``t``; the error of each, or "ok"."""
    outcomes = []
    for sql in (
        "INSERT INTO t (name) VALUES ('new')",
        "UPDATE t SET name = 'changed'",
        "DELETE FROM t",
    ):
        try:
            if kind == "postgres":
                run_sql(url, sql)
            else:
                with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
                    conn.execute(sql)
            outcomes.append("ok")
        except (psycopg2.Error, sqlite3.Error) as exc:
            outcomes.append(str(exc).splitlines()[0])
    return outcomes


@pytest.fixture(params=["sqlite", "postgres"])
def table(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'legacy.sqlite3'}"
        with sqlite3.connect(tmp_path / "legacy.sqlite3") as conn:
            conn.execute("CREATE TABLE t (id integer PRIMARY KEY, name text)")
            conn.execute("INSERT INTO t (name) VALUES ('kept')")
    else:
        url = request.getfixturevalue("databases")["h_plan_svc"]
        run_sql(url, "DROP TABLE IF EXISTS t")
        run_sql(url, "CREATE TABLE t (id bigserial PRIMARY KEY, name text)")
        run_sql(url, "INSERT INTO t (name) VALUES ('kept')")
    yield request.param, url
    if request.param == "postgres":
        run_sql(url, "DROP TABLE IF EXISTS t")


def test_a_frozen_table_refuses_every_write_naming_itself_and_unfreezes(table):
    kind, url = table
    db = connect(url, readonly=False, label="legacy")
    try:
        assert not is_frozen(db, "t")
        for _ in range(2):  # idempotent
            assert apply_freeze(db, ["t"], frozen=True, note=NOTE) == {
                "tables": ["t"],
                "frozen": True,
            }
        assert is_frozen(db, "t")
        refused = writes(kind, url)
        assert len(refused) == 3
        for message in refused:
            assert "table t is frozen" in message and NOTE in message, refused
        for _ in range(2):
            apply_freeze(db, ["t"], frozen=False, note=NOTE)
        assert not is_frozen(db, "t")
        assert writes(kind, url) == ["ok", "ok", "ok"]
    finally:
        db.close()
