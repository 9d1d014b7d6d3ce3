"""How several workers' figures become one (router.workers)."""

from __future__ import annotations

import subprocess
import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from router import workers
from router.workers import MergedRegistry, Shared, families, merged_families


def _registry(requests: float, breaker: float, version: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("hits", "h", ["route"], registry=registry)
    counter.labels("a").inc(requests)
    Gauge("router_breaker_state", "b", ["backend"], registry=registry).labels("x").set(
        breaker
    )
    Gauge("router_config_version", "v", registry=registry).set(version)
    return registry


def _values(metrics) -> dict[str, float]:
    text = generate_latest(MergedRegistry(metrics)).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counters_sum_and_gauges_come_from_live_workers_only():
    own = families(_registry(3, 0, 7))
    other = {"metrics": families(_registry(4, 2, 6)), "alive": True}
    dead = {"metrics": families(_registry(5, 2, 5)), "alive": False}
    values = _values(merged_families(own, [other, dead]))
    assert values["hits_total"] == 12  # 3 + 4 + 5: a dead worker's work still counts
    assert values["router_breaker_state"] == 2  # the worst live state
    assert values["router_config_version"] == 6  # the oldest version still served
    assert values["hits_created"] == min(
        s[2]
        for fams in (own, other["metrics"], dead["metrics"])
        for f in fams
        for s in f["samples"]
        if s[0] == "hits_created"
    )
    alone = _values(merged_families(own, [dead]))
    assert alone["router_breaker_state"] == 0
    assert alone["router_config_version"] == 7


def _gone_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_published_files_are_read_by_the_others_not_by_their_writer(tmp_path):
    gone = _gone_pid()
    one, two = Shared(tmp_path, pid=gone), Shared(tmp_path)
    one.publish({"counts": [["r", "b", 3]]})
    assert one.others() == []
    (seen,) = two.others()
    assert seen["counts"] == [["r", "b", 3]] and seen["pid"] == gone
    assert seen["alive"] is False
    two.publish({})
    assert one.others()[0]["alive"] is True
    (tmp_path / "3.json").write_text("{not json")  # half-gone: skipped, not an error
    assert len(two.others()) == 1


def test_a_gone_supervisors_folder_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(workers.tempfile, "tempdir", str(tmp_path))
    gone = tmp_path / f"{workers.PREFIX}{_gone_pid()}-abc"
    gone.mkdir()
    mine = workers.make_folder()
    assert not gone.exists()
    assert mine.is_dir() and mine.name.startswith(f"{workers.PREFIX}")
    kept = workers.make_folder()  # this process's own folder stays
    assert mine.exists() and kept.exists()
