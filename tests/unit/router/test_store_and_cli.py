"""The versioned store and the ``strangler route`` verbs: every change is a validated new
version with who/when/why, bad input changes nothing, rollback appends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strangler.cli import main
from strangler.routing.store import RouteStore, StoreError

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = str(ROOT / "router/config.example.yaml")


@pytest.fixture
def store_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "router"
    monkeypatch.setenv("STRANGLER_ROUTER_DIR", str(path))
    monkeypatch.setenv("STRANGLER_ACTOR", "alice")
    assert main(["route", "apply", EXAMPLE, "--why", "initial"]) == 0
    return path


def test_set_writes_a_new_version_with_history(store_dir, capsys):
    code = main(["route", "set", "GET,HEAD /api/votes/**", "--to", "vote",
                 "--fallback", "monolith", "--why", "reads to vote"])  # fmt: skip
    assert code == 0
    store = RouteStore(store_dir)
    assert store.current_version() == 2
    live = store.live()
    assert live.config.match("GET", "/api/votes/3/").to == "vote"
    assert live.config.match("POST", "/api/votes/").to == "monolith"
    last = store.history()[-1]
    assert (last["version"], last["parent"], last["who"], last["why"]) == (
        2, 1, "alice", "reads to vote"
    )  # fmt: skip
    assert (store_dir / "versions/000001.yaml").read_text() == Path(EXAMPLE).read_text()


def test_bad_change_is_refused_and_changes_nothing(store_dir, capsys):
    before = sorted(p.name for p in (store_dir / "versions").iterdir())
    assert main(["route", "set", "votes", "--to", "nowhere", "--why", "typo"]) == 1
    err = capsys.readouterr().err
    assert "unknown backend 'nowhere'" in err and "fix:" in err
    assert main(["route", "canary", "votes", "--to", "vote", "--percent", "150",
                 "--why", "x"]) == 1  # fmt: skip
    assert "150.0 is out of range" in capsys.readouterr().err
    assert sorted(p.name for p in (store_dir / "versions").iterdir()) == before
    assert RouteStore(store_dir).current_version() == 1
    assert len(RouteStore(store_dir).history()) == 1


def test_validate_exit_codes_and_messages(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "backends:\n  m: {url: 'http://x:1'}\nroutes:\n  - {path: /**, to: n}\n"
    )
    assert main(["route", "validate", str(bad)]) == 1
    assert f"{bad}:4: routes[0].to: unknown backend 'n'" in capsys.readouterr().err
    assert main(["route", "validate", EXAMPLE]) == 0
    assert main(["route", "validate", str(tmp_path / "missing.yaml")]) == 2


def test_canary_shadow_list_and_rollback(store_dir, capsys):
    assert (
        main(
            [
                "route",
                "canary",
                "votes",
                "--to",
                "vote",
                "--percent",
                "10",
                "--why",
                "c",
            ]
        )
        == 0
    )
    assert main(["route", "shadow", "choices", "--to", "choice", "--why", "s"]) == 0
    capsys.readouterr()
    assert main(["route", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in listed["routes"]}
    assert listed["version"] == 3
    assert by_name["votes"]["canary"] == {"to": "vote", "percent": 10.0, "key": "user"}
    assert by_name["choices"]["shadow"] == {"to": "choice", "percent": 100}
    assert main(["route", "rollback", "--to", "1", "--why", "undo", "--dry-run"]) == 0
    assert RouteStore(store_dir).current_version() == 3
    assert main(["route", "rollback", "--to", "1", "--why", "undo"]) == 0
    store = RouteStore(store_dir)
    assert store.current_version() == 4
    assert store.read(4) == store.read(1)
    assert [e["action"] for e in store.history()][-1] == "rollback to 1"
    assert main(["route", "rollback", "--to", "99", "--why", "x"]) == 2


def test_commit_refuses_a_stale_parent(tmp_path):
    store = RouteStore(tmp_path)
    text = Path(EXAMPLE).read_text()
    store.commit(text, action="a", why="first", expect_parent=None)
    with pytest.raises(StoreError, match="went live while"):
        store.commit(text, action="b", why="second", expect_parent=None)
    with pytest.raises(StoreError, match="--why"):
        store.commit(text, action="c", why=" ")
