"""The file store of the embedded default: atomic state, append-only history, lock."""

from __future__ import annotations

import json

import pytest

from strangler.plan.store import Action, Busy, FileStore, PlanState, Transition


def test_state_round_trips_with_its_pending_transition(tmp_path):
    store = FileStore(tmp_path)
    assert store.load("billing").stage == "monolith"
    pending = Transition(
        kind="advance",
        from_stage="monolith",
        to_stage="dual-write",
        actions=[Action("modes", {"database": "monolith"}, "modes", done=True)],
        actor="me",
        reason="why",
        started_at="now",
    )
    store.save(PlanState("billing", "monolith", pending))
    loaded = store.load("billing")
    assert loaded.pending is not None and loaded.pending.actions[0].done is True
    assert not list(tmp_path.glob(".*.tmp"))  # the temp file was renamed into place


def test_history_appends_and_filters_by_service(tmp_path):
    store = FileStore(tmp_path)
    store.append_history({"service": "billing", "outcome": "completed"})
    store.append_history({"service": "vote", "outcome": "refused"})
    assert [e["outcome"] for e in store.history("billing")] == ["completed"]
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["service"] for line in lines] == ["billing", "vote"]


def test_a_second_lock_on_the_same_service_is_refused(tmp_path):
    store = FileStore(tmp_path)
    with store.lock("billing"):
        with (
            pytest.raises(Busy, match="another `strangler plan` command"),
            FileStore(tmp_path).lock("billing"),
        ):
            pass
        with FileStore(tmp_path).lock("vote"):
            pass


def test_an_unreadable_state_file_is_named(tmp_path):
    (tmp_path / "billing.json").write_text("{not json")
    from strangler.plan.store import StoreError

    with pytest.raises(StoreError, match=r"billing\.json: unreadable plan state"):
        FileStore(tmp_path).load("billing")
