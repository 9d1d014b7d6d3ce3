"""Lag-aware shadow comparison: a safe read whose answers differ is sent again to both
backends after ``shadow_recheck_seconds``; a pair that then matches is converged (a match
that lagged), one that still differs a mismatch with both pairs, and a recheck that cannot
run leaves the first mismatch standing. Backends here are in-memory pools."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from router.shadow import RECHECKS, Shadower, ShadowJob
from router.upstream import UpstreamError
from strangler.cli import main
from strangler.compare import Exchange, compare
from strangler.events.refs import EventRef
from strangler.parity.records import ShadowPair, ShadowRecord, read_records
from strangler.routing.schema import ConfigError, load_config

JSON = {"content-type": "application/json"}


class FakeResponse:
    def __init__(self, value: int) -> None:
        self.status = 200
        self.raw_headers = [(b"content-type", b"application/json")]
        self.body = json.dumps({"id": 1, "value": value}).encode()

    async def read_all(self) -> bytes:
        return self.body

    def release(self) -> None:
        pass


class FakePool:
    """Answers ``{"id": 1, "value": answer(n)}`` to its n-th request (from 1)."""

    def __init__(self, answer: Callable[[int], int | Exception]) -> None:
        self.answer = answer
        self.calls: list[tuple[bytes, bytes]] = []

    async def exchange(self, method, target, headers, body, retry_stale=False):
        self.calls.append((method, headers))
        value = self.answer(len(self.calls))
        if isinstance(value, Exception):
            raise value
        return FakeResponse(value)


def job(shadow: FakePool, primary: FakePool, *, method="GET", recheck=0.01):
    return ShadowJob(
        route="items",
        backend="vote",
        pool=shadow,
        target=b"/api/items/1/",
        method=method,
        path="/api/items/1/",
        headers=b"accept: application/json\r\n",
        body=b"" if method == "GET" else b"{}",
        primary_status=200,
        primary_headers=JSON,
        primary_body=b'{"id": 1, "value": 1}',
        primary_backend="monolith",
        primary_pool=primary,
        recheck_seconds=recheck,
    )


def shadower(tmp_path: Path, queue_size: int = 10) -> Shadower:
    return Shadower(
        queue_size=queue_size,
        workers=2,
        record_path=tmp_path / "shadow.jsonl",
        router_token="router-token",
        rules_dir=None,
    )


def lines(tmp_path: Path) -> list[dict]:
    path = tmp_path / "shadow.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines()]


async def until_recorded(tmp_path: Path, count: int) -> list[dict]:
    for _ in range(1000):
        if len(found := lines(tmp_path)) >= count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} shadow records")


def run(s: Shadower, tmp_path: Path, *jobs: ShadowJob) -> list[dict]:
    async def go() -> list[dict]:
        s.start()
        for j in jobs:
            s.offer(j)
        found = await until_recorded(tmp_path, len(jobs))
        await s.stop()
        return found

    return asyncio.run(go())


def counts(s: Shadower) -> dict[str, int]:
    return {k: v for k, v in s.counts.by_route["items"].items() if v}


def test_stale_shadow_that_catches_up_is_converged_not_a_mismatch(tmp_path):
    stale_once = FakePool(lambda n: 0 if n == 1 else 1)
    primary = FakePool(lambda n: 1)
    s = shadower(tmp_path)
    [record] = run(s, tmp_path, job(stale_once, primary))
    assert counts(s) == {"converged": 1}
    assert s.counts.summary()["items"]["parity"] == 1.0
    assert len(primary.calls) == 1 and len(stale_once.calls) == 2
    assert record["comparison"]["matched"] is True
    first = record["first"]
    assert first["comparison"]["matched"] is False
    assert json.loads(first["shadow"]["body"])["value"] == 0
    assert first["shadow"]["backend"] == "vote" and first["at"] <= record["at"]
    assert ShadowRecord.from_dict(record).converged


def test_a_recheck_racing_newer_writes_is_rechecked_again_until_it_converges(tmp_path):
    stale_twice = FakePool(lambda n: 0 if n <= 2 else 1)
    primary = FakePool(lambda n: 1)
    s = shadower(tmp_path)
    [record] = run(s, tmp_path, job(stale_twice, primary))
    assert counts(s) == {"converged": 1}
    assert len(primary.calls) == 2 and len(stale_twice.calls) == 3
    assert json.loads(record["first"]["shadow"]["body"])["value"] == 0


def test_persistent_difference_is_a_mismatch_with_both_pairs(tmp_path):
    s = shadower(tmp_path)
    shadow = FakePool(lambda n: 2)
    [record] = run(s, tmp_path, job(shadow, FakePool(lambda n: 1)))
    assert counts(s) == {"mismatch": 1}
    assert len(shadow.calls) == 1 + RECHECKS
    assert record["comparison"]["matched"] is False
    assert record["first"]["comparison"]["matched"] is False
    assert json.loads(record["shadow"]["body"])["value"] == 2
    assert not ShadowRecord.from_dict(record).converged


def test_recheck_disabled_counts_the_first_difference(tmp_path):
    primary = FakePool(lambda n: 1)
    s = shadower(tmp_path)
    [record] = run(s, tmp_path, job(FakePool(lambda n: 0), primary, recheck=0))
    assert counts(s) == {"mismatch": 1}
    assert "first" not in record and primary.calls == []


def test_a_write_the_primary_carried_out_is_never_rechecked(tmp_path):
    primary = FakePool(lambda n: 1)
    shadow = FakePool(lambda n: 0)
    s = shadower(tmp_path)
    [record] = run(s, tmp_path, job(shadow, primary, method="POST"))
    assert counts(s) == {"mismatch": 1}
    assert record["dry_run"] is True and "first" not in record
    assert primary.calls == [] and len(shadow.calls) == 1
    assert b"X-Strangler-Dry-Run: 1" in shadow.calls[0][1]


def test_a_match_at_first_sight_is_not_rechecked(tmp_path):
    primary = FakePool(lambda n: 1)
    s = shadower(tmp_path)
    [record] = run(s, tmp_path, job(FakePool(lambda n: 1), primary))
    assert counts(s) == {"match": 1}
    assert "first" not in record and primary.calls == []


def test_a_failed_recheck_leaves_the_first_mismatch_standing(tmp_path):
    primary = FakePool(lambda n: UpstreamError("connect", "refused"))
    s = shadower(tmp_path)
    [record] = run(s, tmp_path, job(FakePool(lambda n: 0), primary))
    assert counts(s) == {"mismatch": 1, "unconfirmed": 1}
    assert "first" not in record
    assert json.loads(record["shadow"]["body"])["value"] == 0


def test_waiting_rechecks_are_bounded_and_flushed_as_mismatches_on_stop(tmp_path):
    s = shadower(tmp_path, queue_size=1)

    async def go() -> tuple[list[dict], dict[str, int]]:
        s.start()
        s.offer(job(FakePool(lambda n: 0), FakePool(lambda n: 1), recheck=30))
        await s.drain()
        # One recheck already waits: the next difference cannot, so it counts at once.
        s.offer(job(FakePool(lambda n: 0), FakePool(lambda n: 1), recheck=30))
        await until_recorded(tmp_path, 1)
        before = counts(s)
        await s.stop()
        return lines(tmp_path), before

    found, before = asyncio.run(go())
    assert before == {"mismatch": 1, "unconfirmed": 1}
    assert counts(s) == {"mismatch": 2, "unconfirmed": 2}
    assert len(found) == 2 and all("first" not in r for r in found)


def test_parity_report_counts_converged_records_as_matched(tmp_path, capsys):
    def exchange(value: int) -> Exchange:
        return Exchange(200, JSON, json.dumps({"id": 1, "value": value}).encode())

    def record(first: int | None, primary: int, shadow: int) -> ShadowRecord:
        path = "/api/items/1/"
        pair = None
        if first is not None:
            early = compare(exchange(primary), exchange(first), method="GET", path=path)
            pair = ShadowPair(exchange(primary), exchange(first), early)
        return ShadowRecord(
            route="items",
            method="GET",
            path=path,
            primary=exchange(primary),
            shadow=exchange(shadow),
            comparison=compare(
                exchange(primary), exchange(shadow), method="GET", path=path
            ),
            first=pair,
        )

    shadow = tmp_path / "shadow.jsonl"
    written = [record(None, 1, 1), record(0, 1, 1), record(0, 1, 2)]
    shadow.write_text("".join(r.to_json() + "\n" for r in written))
    assert [r.converged for r in read_records(shadow)] == [False, True, False]
    [converged] = [r for r in read_records(shadow) if r.converged]
    assert converged.first.shadow.body == exchange(0).body
    for extra in ([], ["--rules", str(tmp_path / "none.yaml")]):
        if extra:
            (tmp_path / "none.yaml").write_text("parity: {}\n")
        code = main(["parity", "report", "--shadow", str(shadow), "--json", *extra])
        report = json.loads(capsys.readouterr().out)
        assert code == 1
        assert (report["totals"]["matched"], report["totals"]["mismatched"]) == (2, 1)


def test_recheck_setting_defaults_to_two_seconds_and_zero_disables():
    base = "backends:\n  monolith: {url: 'http://127.0.0.1:8000'}\nroutes:\n"
    base += "  - {path: /**, to: monolith}\n"
    assert load_config(base).settings.shadow_recheck_seconds == 2.0
    off = base + "settings: {shadow_recheck_seconds: 0}\n"
    assert load_config(off).settings.shadow_recheck_seconds == 0.0
    for bad in ("-1", "31", "soon"):
        text = base + f"settings:\n  shadow_recheck_seconds: {bad}\n"
        with pytest.raises(ConfigError) as info:
            load_config(text, source="routes.yaml")
        [problem] = info.value.problems
        assert str(problem).startswith(
            "routes.yaml:6: settings.shadow_recheck_seconds:"
        )


class DryRunPool(FakePool):
    """A shadow service answering dry runs with an outcome and the events it found applied."""

    def __init__(
        self,
        outcome: str | Callable[[int], str],
        applied: str = "",
        answer: Callable[[int], int | Exception] = lambda n: 1,
    ) -> None:
        super().__init__(answer)
        self.outcome, self.applied = outcome, applied

    async def exchange(self, method, target, headers, body, retry_stale=False):
        response = await super().exchange(method, target, headers, body, retry_stale)
        outcome = self.outcome
        if callable(outcome):
            outcome = outcome(len(self.calls))
        response.raw_headers.append((b"X-Strangler-Dry-Run-Outcome", outcome.encode()))
        if self.applied:
            response.raw_headers.append((b"X-Strangler-Applied", self.applied.encode()))
        return response


def fenced_job(shadow: FakePool) -> ShadowJob:
    from dataclasses import replace

    return replace(
        job(shadow, FakePool(lambda n: 1), method="POST"),
        principal="7",
        fence=(EventRef("vote", "1", 2),),
        overtake=(EventRef("vote", "2", 1),),
    )


def run_unrecorded(s: Shadower, *jobs: ShadowJob) -> None:
    async def go() -> None:
        s.start()
        for j in jobs:
            s.offer(j)
        await s.drain()
        await s.stop()

    asyncio.run(go())


@pytest.mark.parametrize("outcome", ["overtaken", "fence-timeout"])
def test_a_dry_run_the_service_did_not_execute_is_not_comparable(tmp_path, outcome):
    s = shadower(tmp_path)
    run_unrecorded(s, fenced_job(DryRunPool(outcome)))
    assert counts(s) == {outcome: 1}
    summary = s.counts.summary()["items"]
    assert (summary["compared"], summary["not_comparable"], summary["parity"]) == (
        0,
        1,
        None,
    )
    assert lines(tmp_path) == []


def test_a_dry_run_carries_its_fence_and_the_router_forgets_what_was_applied(tmp_path):
    s = shadower(tmp_path)
    s.fences.add("vote", "7", [EventRef("vote", "1", 2), EventRef("vote", "3", 1)])
    shadow = DryRunPool("executed", applied="vote:1@2")
    [record] = run(s, tmp_path, fenced_job(shadow))
    assert counts(s) == {"match": 1}
    sent = shadow.calls[0][1].decode()
    assert "X-Strangler-Fence: vote:1@2\r\n" in sent
    assert "X-Strangler-Overtake: vote:2@1\r\n" in sent
    assert s.fences.fence("vote", "7") == (EventRef("vote", "3", 1),)
    assert record["dry_run"] is True


def refused_write(shadow: FakePool, primary: FakePool, **changes) -> ShadowJob:
    """A cast the primary refused (409) without committing an event."""
    from dataclasses import replace

    refused = {
        "primary_status": 409,
        "primary_dry_run": True,
        "principal": "7",
        "fence": (EventRef("vote", "1", 2),),
    }
    return replace(job(shadow, primary, method="POST"), **{**refused, **changes})


def test_a_refused_write_is_rechecked_as_a_dry_run_on_both_sides(tmp_path):
    s = shadower(tmp_path)
    behind_once = DryRunPool("executed", answer=lambda n: 0 if n == 1 else 1)
    primary = DryRunPool("executed")
    # A write of the same user answered since: the recheck waits for it too.
    s.fences.add("vote", "7", [EventRef("vote", "3", 1)])
    [record] = run(s, tmp_path, refused_write(behind_once, primary))
    assert counts(s) == {"converged": 1}
    assert record["dry_run"] is True and record["first"]["shadow"]["status"] == 200
    [(_, to_primary)] = primary.calls
    assert b"X-Strangler-Dry-Run: 1\r\n" in to_primary
    assert b"X-Strangler-Router-Token: router-token\r\n" in to_primary
    assert b"X-Strangler-Fence" not in to_primary  # the primary waits for nothing
    first, again = (headers.decode() for _, headers in behind_once.calls)
    assert "X-Strangler-Fence: vote:1@2\r\n" in first
    assert "X-Strangler-Fence: vote:1@2, vote:3@1\r\n" in again
    assert "X-Strangler-Overtake" not in again


@pytest.mark.parametrize(
    "changes",
    [
        {"primary_status": 201},  # carried out: asked again, it would meet itself
        {"overtake": (EventRef("vote", "2", 1),)},  # refused, yet it committed an event
        {"primary_dry_run": False},  # the primary cannot be asked for a dry run
        {"primary_status": 503},
        {"recheck_seconds": 0},
    ],
)
def test_a_write_that_cannot_be_asked_again_counts_its_first_difference(
    tmp_path, changes
):
    s = shadower(tmp_path)
    primary = DryRunPool("executed")
    shadow = DryRunPool("executed", answer=lambda n: 0)
    [record] = run(s, tmp_path, refused_write(shadow, primary, **changes))
    assert counts(s) == {"mismatch": 1}
    assert "first" not in record and primary.calls == [] and len(shadow.calls) == 1


@pytest.mark.parametrize("side", ["primary", "shadow"])
def test_a_write_recheck_whose_dry_run_did_not_run_leaves_the_first_mismatch(
    tmp_path, side
):
    s = shadower(tmp_path)
    primary = DryRunPool("fence-timeout" if side == "primary" else "executed")
    shadow = DryRunPool(
        (lambda n: "executed" if n == 1 else "fence-timeout")
        if side == "shadow"
        else "executed",
        answer=lambda n: 0,
    )
    [record] = run(s, tmp_path, refused_write(shadow, primary))
    assert counts(s) == {"mismatch": 1, "unconfirmed": 1}
    assert len(primary.calls) == 1 and len(shadow.calls) == 2
    assert "first" not in record
    assert json.loads(record["shadow"]["body"])["value"] == 0
