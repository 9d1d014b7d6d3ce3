"""Backfill and verify while votes keep arriving (issue 5): a monolith seeded with 100,000 votes
(``STRANGLER_LONG=1``: 400,000) in the ``dual-write`` stage, its relay and the vote service's
consumer running, and a load casting and retracting votes through the monolith's API the whole
time. ``strangler sync backfill vote`` then ``strangler sync verify vote`` must finish with
zero reported differences: the writes in flight are the event stream's, not drift. Once the
load stops and the path drains, the two full vote sets are equal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from strangler.auth.tokens import issue_token
from tests.e2e import stack as s
from tests.e2e.full_stack import FullStack, Load

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.timeout(600)]

LONG = os.environ.get("STRANGLER_LONG") == "1"
VOTES = 400_000 if LONG else 100_000
USERS, QUESTIONS = (5000, 100) if LONG else (2000, 60)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Iterator[FullStack]:
    stack = FullStack(tmp_path_factory.mktemp("sync-live"))
    try:
        stack.create(
            seed=["--users", str(USERS), "--questions", str(QUESTIONS),
                  "--choices-per-question", "4", "--votes", str(VOTES), "--seed", "5"],
        )  # fmt: skip
        s.set_modes(stack.monolith.database, vote="forward", choice="forward")
        s.set_modes(stack.vote.database, vote="reverse")
        stack.serve(services=False, router=False)
        yield stack
    finally:
        stack.close()


def test_backfill_and_verify_under_live_votes_report_no_difference(seeded, tmp_path):
    monolith = seeded.monolith.database
    assert s.sql(monolith, "SELECT count(*) FROM polls_vote")[0][0] == VOTES
    tokens = [issue_token(user)["access"] for user in seeded.users[-200:]]
    load = Load(seeded.urls["monolith"], tokens, write_ratio=0.5, retract_ratio=0.2)
    load.start()
    try:
        before = load.count("POST /api/votes/ 201") + load.count("DELETE")
        backfill = seeded.strangler("sync", "backfill", "vote", "--json")
        assert backfill.returncode == 0, backfill.stderr
        report = tmp_path / "verify.json"
        verify = seeded.strangler(
            "sync", "verify", "vote", "--report", str(report), "--json"
        )
        during = load.count("POST /api/votes/ 201") + load.count("DELETE") - before
    finally:
        tally = load.stop()
    result = json.loads(report.read_text())
    assert verify.returncode == 0, json.dumps(result)[:3000]
    assert result["differences_total"] == 0
    assert all(t["differences"] == [] for t in result["tables"])
    votes = next(t for t in result["tables"] if t["target"] == "votes_vote")
    assert votes["rows_source"] >= VOTES - len(tally.retracted)
    # The writes really overlapped both commands.
    assert during > 0, tally.as_dict()["statuses"]
    assert not tally.errors, tally.errors

    s.wait_until(seeded.forward_drained, "forward path drained", seeded.logs)
    legacy = s.votes(monolith, "polls_vote")
    assert legacy == s.votes(seeded.vote.database, "votes_vote")
    ids = {row[0] for row in legacy}
    assert tally.accepted - tally.retracted <= ids
    assert not tally.retracted & ids
