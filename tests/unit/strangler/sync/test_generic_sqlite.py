"""The generic (SQLite) path on a non-polls plan: backfill, seq guard, verify, reconcile,
fingerprint refusal and sequences, on real SQLite files."""

from __future__ import annotations

import io
import sqlite3
import textwrap

import pytest

from strangler.plans import load_plan_text
from strangler.sync.backfill import BackfillOptions, backfill
from strangler.sync.db import SyncError, connect
from strangler.sync.progress import Progress
from strangler.sync.reconcile import reconcile
from strangler.sync.sequences import cutover_sequences
from strangler.sync.verify import VerifyOptions, verify

PLAN = textwrap.dedent(
    """\
    service: billing
    version: {version}
    databases: {{source: LEGACY_DATABASE_URL, target: BILLING_DATABASE_URL}}
    tables:
      - source: shop_invoice
        target: billing_invoice
        key: number
        columns: [number, {{source: customer, target: customer_name}}, total, issued_at]
        tombstones: {{table: billing_tombstone, key: invoice, where: "kind = 'invoice'"}}
    """
)
ROWS = 2_345


@pytest.fixture
def dbs(tmp_path):
    src, tgt = tmp_path / "shop.sqlite3", tmp_path / "billing.sqlite3"
    with sqlite3.connect(src) as conn:
        conn.execute(
            "CREATE TABLE shop_invoice (number integer PRIMARY KEY AUTOINCREMENT,"
            " customer varchar(50), total decimal, issued_at datetime)"
        )
        conn.executemany(
            "INSERT INTO shop_invoice VALUES (?, ?, ?, ?)",
            [
                (
                    i,
                    f"customer {i}" if i % 7 else None,
                    f"{i}.50",
                    f"2024-02-0{1 + i % 9} 10:00:0{i % 10}.123456",
                )
                for i in range(1, ROWS + 1)
            ],
        )
    with sqlite3.connect(tgt) as conn:
        conn.execute(
            "CREATE TABLE billing_invoice (number integer PRIMARY KEY AUTOINCREMENT,"
            " customer_name varchar(50), total decimal, issued_at datetime, seq bigint NOT NULL DEFAULT 0)"
        )
        conn.execute("CREATE TABLE billing_tombstone (kind text, invoice integer)")
    source = connect(f"sqlite:///{src}", readonly=True, label="source")
    target = connect(f"sqlite:///{tgt}", readonly=False, label="target")
    yield source, target
    source.close()
    target.close()


def plan(version: int = 1):
    return load_plan_text(PLAN.format(version=version), "billing.yaml")


def test_backfill_verify_reconcile_on_sqlite(dbs):
    source, target = dbs
    target.execute(
        "INSERT INTO billing_invoice VALUES (5, 'from an event', '9.99', '2024-05-05 00:00:00', 4)"
    )
    target.execute("INSERT INTO billing_tombstone VALUES ('invoice', 6)")
    target.commit()
    result = backfill(
        plan(), source, target, BackfillOptions(batch_size=500), out=io.StringIO()
    )
    (table,) = result["tables"]
    assert (table["rows_copied"], table["batches"], table["completed"]) == (
        ROWS,
        5,
        True,
    )
    assert target.fetchone(
        "SELECT customer_name, seq FROM billing_invoice WHERE number = 5"
    ) == ("from an event", 4)
    assert target.fetchone("SELECT count(*) FROM billing_invoice WHERE number = 6") == (
        0,
    )

    report = verify(
        plan(),
        source,
        target,
        VerifyOptions(chunk_size=700, recheck_delay=0.01),
        out=io.StringIO(),
    )
    kinds = {(d["key"], d["kind"]) for d in report["tables"][0]["differences"]}
    assert kinds == {("5", "different"), ("6", "tombstoned")}

    target.execute("UPDATE billing_invoice SET seq = 0, total = '1' WHERE number = 7")
    target.execute("DELETE FROM billing_invoice WHERE number = 8")
    target.commit()
    wanted = {"billing_invoice": ["5", "6", "7", "8"]}
    dry = reconcile(plan(), source, target, wanted, apply=False)
    assert [a["action"] for a in dry["actions"]] == [
        "update",
        "skip",
        "update",
        "insert",
    ]
    assert target.fetchone("SELECT total FROM billing_invoice WHERE number = 7") == (1,)
    reconcile(plan(), source, target, wanted, apply=True)
    again = reconcile(plan(), source, target, wanted, apply=True)
    assert again["changes"] == 0
    final = verify(
        plan(), source, target, VerifyOptions(recheck_delay=0.01), out=io.StringIO()
    )
    assert [d["key"] for d in final["tables"][0]["differences"]] == ["6"]


def test_resume_with_changed_plan_version_is_refused_with_the_reason(dbs):
    source, target = dbs
    backfill(
        plan(1), source, target, BackfillOptions(batch_size=1000), out=io.StringIO()
    )
    with pytest.raises(SyncError, match="plan version changed from 1 to 2"):
        backfill(plan(2), source, target, BackfillOptions(), out=io.StringIO())
    forced = backfill(
        plan(2), source, target, BackfillOptions(force=True), out=io.StringIO()
    )
    assert forced["tables"][0]["rows_this_run"] == 0


def test_cutover_sequences_on_sqlite_is_idempotent(dbs):
    source, target = dbs
    first = cutover_sequences(plan(), source, target, gap=100, dry_run=False)
    assert first["tables"][0]["action"] == "set"
    assert first["tables"][0]["wanted_next"] == ROWS + 101
    second = cutover_sequences(plan(), source, target, gap=100, dry_run=False)
    assert second["tables"][0]["action"] == "none"
    target.execute(
        "INSERT INTO billing_invoice (customer_name, total, issued_at) VALUES ('new', '1', '2024-01-01')"
    )
    assert target.fetchone("SELECT max(number) FROM billing_invoice") == (ROWS + 101,)


def test_progress_reports_windowed_rate_and_eta():
    out = io.StringIO()
    progress = Progress("job", 1000, out=out, interval=0)
    progress.samples.clear()
    progress.samples.extend([(0.0, 0), (10.0, 500)])
    progress.done = 500
    assert progress.rate() == 50.0
    assert progress.eta() == 10.0
    assert "500/1,000 rows (50.0%) 50 rows/s ETA 0:10" in progress.line()


def test_tombstones_kept_in_a_view_are_found_on_sqlite(tmp_path):
    """The services expose their tombstones as views over the consumer's version table."""
    from strangler.sync.db import connect

    path = tmp_path / "svc.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE versions (aggregate_type text, aggregate_id text, deleted int)"
        )
        conn.execute(
            "CREATE VIEW votes_tombstone AS SELECT aggregate_type AS entity, aggregate_id"
            " FROM versions WHERE deleted"
        )
    database = connect(f"sqlite:///{path}", readonly=True, label="target")
    assert database.table_exists("votes_tombstone")
    assert not database.table_exists("no_such_view")


def test_verify_recheck_reads_the_sqlite_outbox_timestamps(tmp_path):
    from datetime import UTC, datetime

    from strangler.sync.verify import _outbox_drained_past

    path = tmp_path / "monolith.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE strangler_dualwrite_outboxevent (id integer PRIMARY KEY,"
            " created_at datetime, sent_at datetime)"
        )
        conn.execute(
            "INSERT INTO strangler_dualwrite_outboxevent (created_at)"
            " VALUES ('2026-11-28 01:00:00.500000')"
        )
    source = connect(f"sqlite:///{path}", readonly=True, label="source")
    try:
        assert _outbox_drained_past(source, datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
        assert not _outbox_drained_past(
            source, datetime(2026, 11, 28, 1, 0, 1, tzinfo=UTC)
        )
    finally:
        source.close()


def test_each_recheck_round_waits_for_the_events_older_than_itself(dbs):
    """A retraction made after the verify started is gone from the source when a recheck
    re-reads it: the round must wait for the events older than the round, not only than
    the verify, or the target's not-yet-applied row is reported as drift."""
    from datetime import UTC, datetime

    source, target = dbs
    backfill(
        plan(), source, target, BackfillOptions(batch_size=1000), out=io.StringIO()
    )
    target.execute("UPDATE billing_invoice SET total = '0' WHERE number = 9")
    target.commit()  # a difference that stays, so that both recheck rounds run
    asked: list[datetime] = []

    def drained(since: datetime) -> bool:
        asked.append(since)
        return True

    before = datetime.now(UTC)
    report = verify(
        plan(), source, target,
        VerifyOptions(recheck_delay=0.05, drained_past=drained), out=io.StringIO(),
    )  # fmt: skip
    assert [d["key"] for d in report["tables"][0]["differences"]] == ["9"]
    assert len(asked) == 2
    assert before <= asked[0] < asked[1]  # each round's own start, later each time
