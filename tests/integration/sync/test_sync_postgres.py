"""Sync on real PostgreSQL through the real CLI: backfill, resume after SIGKILL, the seq guard,
fingerprint refusal, verify + reconcile, lag-aware rechecks and cutover-sequences."""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from strangler.conf import REPO_ROOT
from strangler.plans import load_plan
from strangler.sync.db import connect
from strangler.sync.verify import VerifyOptions, verify
from tests.integration.sync.conftest import (
    STRANGLER,
    VOTE_PLAN,
    run_sql,
    seed_source,
    strangler,
    sync_args,
)

pytestmark = pytest.mark.postgres
LONG = os.environ.get("STRANGLER_LONG") == "1"
COLUMNS = "id, choice_id, question_id, user_id, created_at"


def rows(url: str, table: str, columns: str = COLUMNS) -> list[tuple]:
    return run_sql(url, f"SELECT {columns} FROM {table} ORDER BY id")


def watermark(url: str) -> tuple[int, str | None]:
    if run_sql(url, "SELECT to_regclass('strangler_sync_watermark') IS NULL") == [
        (True,)
    ]:
        return 0, None  # killed before the first batch
    found = run_sql(
        url,
        "SELECT rows_copied, last_key FROM strangler_sync_watermark WHERE \"table\" = 'votes_vote'",
    )
    return found[0] if found else (0, None)


def test_backfill_copies_every_row_exactly_and_verify_passes(source_url, target_url):
    seed_source(source_url, 20_000)
    done = strangler(
        *sync_args("backfill", source_url, target_url, "--batch-size", "3000", "--json")
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    vote = result["tables"][0]
    assert (vote["rows_copied"], vote["rows_total"], vote["batches"]) == (
        20_000,
        20_000,
        7,
    )
    assert "rows/s ETA" in done.stderr and "20,000/20,000 rows (100.0%)" in done.stderr
    assert rows(source_url, "polls_vote") == rows(target_url, "votes_vote")
    assert rows(source_url, "polls_choice", "id, question_id") == rows(
        target_url, "votes_choiceref", "id, question_id"
    )
    assert run_sql(target_url, "SELECT count(*) FROM votes_vote WHERE seq <> 0") == [
        (0,)
    ]
    checked = strangler(*sync_args("verify", source_url, target_url))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    again = strangler(*sync_args("backfill", source_url, target_url, "--json"))
    assert json.loads(again.stdout)["tables"][0]["rows_this_run"] == 0


def test_dry_run_and_bad_input_change_nothing(source_url, target_url):
    seed_source(source_url, 1_000)
    dry = strangler(*sync_args("backfill", source_url, target_url, "--dry-run"))
    assert dry.returncode == 0, dry.stderr
    assert "would copy 1,000 rows" in dry.stdout
    assert run_sql(
        target_url, "SELECT to_regclass('strangler_sync_watermark') IS NULL"
    ) == [(True,)]
    unknown = strangler(
        *sync_args("backfill", source_url, target_url, "--table", "polls_nope")
    )
    assert unknown.returncode == 2
    assert "no table 'polls_nope'" in unknown.stderr and "vote.yaml" in unknown.stderr
    missing = strangler(
        *sync_args(
            "reconcile", source_url, target_url, "--from", "/nonexistent/report.json"
        )
    )
    assert missing.returncode == 2 and "/nonexistent/report.json" in missing.stderr
    no_env = strangler(
        "sync",
        "status",
        "vote",
        "--plan",
        str(VOTE_PLAN),
        env={"LEGACY_DATABASE_URL": ""},
    )
    assert no_env.returncode == 2 and "LEGACY_DATABASE_URL" in no_env.stderr
    assert run_sql(target_url, "SELECT count(*) FROM votes_vote") == [(0,)]


def test_resume_after_sigkill_at_random_moments(source_url, target_url):
    total, kills, batch = (1_000_000, 20, 10_000) if LONG else (100_000, 3, 5_000)
    seed_source(source_url, total)
    rate = max(20_000, int(total / (kills * 1.2)))
    rng = random.Random(os.environ.get("STRANGLER_SEED", "5"))
    previous = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            [
                *STRANGLER,
                *sync_args(
                    "backfill",
                    source_url,
                    target_url,
                    "--batch-size",
                    str(batch),
                    "--rows-per-second",
                    str(rate),
                    "--table",
                    "votes_vote",
                ),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.4 + rng.uniform(0.0, 0.6))
        assert proc.poll() is None, "backfill finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        copied, _ = watermark(target_url)
        # The watermark commits with its batch: every committed row is counted once.
        assert run_sql(target_url, "SELECT count(*) FROM votes_vote") == [(copied,)]
        assert copied >= previous
        previous = copied
    assert 0 < previous < total
    final = strangler(
        *sync_args(
            "backfill",
            source_url,
            target_url,
            "--batch-size",
            str(batch),
            "--json",
            "--table",
            "votes_vote",
        )
    )
    assert final.returncode == 0, final.stderr
    result = json.loads(final.stdout)["tables"][0]
    assert result["resumed_from"] is not None
    # Only the batch in flight at each kill was lost and redone; nothing committed twice.
    assert result["rows_this_run"] == total - previous
    assert result["rows_copied"] == total
    checked = strangler(
        *sync_args("verify", source_url, target_url, "--table", "votes_vote")
    )
    assert checked.returncode == 0, checked.stdout


def test_backfill_never_overwrites_rows_the_event_stream_made_newer(
    source_url, target_url
):
    seed_source(source_url, 30_000)
    run_sql(
        target_url,
        "INSERT INTO votes_vote (id, choice_id, question_id, user_id, created_at, seq)"
        " VALUES (15000, 9999, 9999, 9999, now(), 7);"
        " INSERT INTO votes_tombstone (entity, aggregate_id, seq) VALUES ('vote', 16000, 3)",
    )
    stop = threading.Event()
    touched: set[int] = set()

    def consumer() -> None:
        ids = iter(range(1, 30_000, 97))
        while not stop.is_set():
            vote_id = next(ids, None)
            if vote_id is None:
                return
            run_sql(
                target_url,
                "INSERT INTO votes_vote (id, choice_id, question_id, user_id, created_at, seq)"
                " VALUES (%s, -1, -1, %s, now(), 1) ON CONFLICT (id) DO UPDATE"
                " SET choice_id = -1, seq = votes_vote.seq + 1",
                (vote_id, -vote_id),
            )
            touched.add(vote_id)
            time.sleep(0.002)

    thread = threading.Thread(target=consumer)
    thread.start()
    try:
        done = strangler(
            *sync_args(
                "backfill",
                source_url,
                target_url,
                "--batch-size",
                "1000",
                "--rows-per-second",
                "30000",
                "--table",
                "votes_vote",
            )
        )
    finally:
        stop.set()
        thread.join()
    assert done.returncode == 0, done.stderr
    assert len(touched) > 20
    assert run_sql(
        target_url, "SELECT choice_id, seq FROM votes_vote WHERE id = 15000"
    ) == [(9999, 7)]
    assert run_sql(target_url, "SELECT count(*) FROM votes_vote WHERE id = 16000") == [
        (0,)
    ]
    changed = run_sql(
        target_url, "SELECT id FROM votes_vote WHERE choice_id = -1 ORDER BY id"
    )
    assert {r[0] for r in changed} == touched


def test_changed_column_list_is_refused_with_the_reason(
    source_url, target_url, tmp_path
):
    seed_source(source_url, 5_000)
    assert (
        strangler(
            *sync_args("backfill", source_url, target_url, "--table", "votes_vote")
        ).returncode
        == 0
    )
    narrower = tmp_path / "vote.yaml"
    narrower.write_text(
        VOTE_PLAN.read_text().replace("      - source: created_at\n", "", 1)
    )
    refused = strangler(
        *sync_args(
            "backfill", source_url, target_url, "--table", "votes_vote", plan=narrower
        )
    )
    assert refused.returncode == 2
    assert "refusing to resume votes_vote" in refused.stderr
    assert (
        "column list or types changed" in refused.stderr
        and "created_at" in refused.stderr
    )
    assert "--restart" in refused.stderr and "--force" in refused.stderr
    forced = strangler(
        *sync_args(
            "backfill",
            source_url,
            target_url,
            "--table",
            "votes_vote",
            "--force",
            plan=narrower,
        )
    )
    assert forced.returncode == 0, forced.stderr


def test_verify_names_a_corrupted_and_a_deleted_row_and_reconcile_repairs_them(
    source_url, target_url, tmp_path
):
    seed_source(source_url, 50_000)
    assert strangler(*sync_args("backfill", source_url, target_url)).returncode == 0
    run_sql(
        target_url,
        "UPDATE votes_vote SET created_at = created_at + interval '1 microsecond' WHERE id = 31337;"
        " DELETE FROM votes_vote WHERE id = 4242",
    )
    report = tmp_path / "report.json"
    found = strangler(
        *sync_args(
            "verify",
            source_url,
            target_url,
            "--report",
            str(report),
            "--recheck-delay",
            "0.2",
        )
    )
    assert found.returncode == 1
    diffs = json.loads(report.read_text())["tables"][0]["differences"]
    assert [(d["key"], d["kind"]) for d in diffs] == [
        ("4242", "missing"),
        ("31337", "different"),
    ]
    assert list(diffs[1]["columns"]) == ["created_at"]

    dry = strangler(
        *sync_args("reconcile", source_url, target_url, "--from", str(report))
    )
    assert dry.returncode == 0, dry.stderr
    assert (
        "INSERT votes_vote key=4242" in dry.stdout
        and "UPDATE votes_vote key=31337" in dry.stdout
    )
    assert run_sql(target_url, "SELECT count(*) FROM votes_vote WHERE id = 4242") == [
        (0,)
    ]

    applied = strangler(
        *sync_args(
            "reconcile",
            source_url,
            target_url,
            "--from",
            str(report),
            "--apply",
            "--json",
        )
    )
    assert json.loads(applied.stdout)["changes"] == 2
    twice = strangler(
        *sync_args(
            "reconcile",
            source_url,
            target_url,
            "--from",
            str(report),
            "--apply",
            "--json",
        )
    )
    assert json.loads(twice.stdout)["changes"] == 0
    clean = strangler(*sync_args("verify", source_url, target_url))
    assert clean.returncode == 0, clean.stdout
    status = strangler(*sync_args("status", source_url, target_url, "--json"))
    table = json.loads(status.stdout)["tables"][0]
    assert table["verify"]["ok"] is True and table["backfill"]["completed"] is True


def test_verify_rechecks_in_flight_writes_instead_of_reporting_them(
    source_url, target_url
):
    seed_source(source_url, 20_000)
    assert strangler(*sync_args("backfill", source_url, target_url)).returncode == 0
    # The monolith writes now; the "consumer" applies the same change to the service later.
    run_sql(
        source_url,
        "UPDATE polls_vote SET created_at = created_at + interval '1 day' WHERE id IN (10, 19000)",
    )

    def consumer() -> None:
        time.sleep(1.5)
        run_sql(
            target_url,
            "UPDATE votes_vote SET created_at = created_at + interval '1 day', seq = seq + 1 WHERE id IN (10, 19000)",
        )

    thread = threading.Thread(target=consumer)
    plan = load_plan(VOTE_PLAN)
    source = connect(source_url, readonly=True, label="source")
    target = connect(target_url, readonly=False, label="target")
    try:
        thread.start()
        result = verify(
            plan, source, target, VerifyOptions(recheck_delay=2.0), out=io.StringIO()
        )
    finally:
        thread.join()
        source.close()
        target.close()
    vote = result["tables"][0]
    assert result["ok"] is True
    assert (vote["suspects"], vote["resolved_in_flight"]) == (2, 2)


def test_cutover_sequences_twice_is_safe_and_never_moves_backwards(
    source_url, target_url
):
    seed_source(source_url, 2_000)
    assert strangler(*sync_args("backfill", source_url, target_url)).returncode == 0
    dry = strangler(
        *sync_args("cutover-sequences", source_url, target_url, "--dry-run", "--json")
    )
    assert json.loads(dry.stdout)["tables"][0]["action"] == "would set"
    first = strangler(
        *sync_args(
            "cutover-sequences", source_url, target_url, "--gap", "500", "--json"
        )
    )
    vote = json.loads(first.stdout)["tables"][0]
    assert (vote["action"], vote["wanted_next"]) == ("set", 2_501)
    second = strangler(
        *sync_args(
            "cutover-sequences", source_url, target_url, "--gap", "500", "--json"
        )
    )
    assert json.loads(second.stdout)["tables"][0]["action"] == "none"
    run_sql(
        target_url, "SELECT setval(pg_get_serial_sequence('votes_vote', 'id'), 90000)"
    )
    third = strangler(
        *sync_args("cutover-sequences", source_url, target_url, "--gap", "500")
    )
    assert third.returncode == 0
    assert run_sql(
        target_url, "SELECT nextval(pg_get_serial_sequence('votes_vote', 'id'))"
    ) == [(90001,)]
