"""Several router workers, one view.

With ``ROUTER_WORKERS`` above 1 each worker is its own process and the kernel spreads
connections over them, so a scrape of ``/metrics`` or a look at ``/_strangler/`` lands on
one worker at random. Each worker therefore publishes what it has counted (its metric
families, its request and shadow counts, its config version) every poll, as one JSON file
per worker in a folder the supervisor made for this run (``ROUTER_SHARED_DIR``); whichever
worker answers adds the others' files to its own live figures. Counters and histograms
are summed (a worker that died still counts: what it served was served); a gauge is taken
from the live workers only: the breaker state as the worst of them, the config version as
the oldest still served. The other workers' figures are at most one poll old.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

ENV = "ROUTER_SHARED_DIR"
PREFIX = "strangler-router-"
# How a gauge's values from several live workers become one; other gauges: the highest.
GAUGE_MERGE = {"router_config_version": min, "router_breaker_state": max}


class Shared:
    """This worker's side of the folder: publish its snapshot, read the others'."""

    def __init__(self, root: Path, pid: int | None = None) -> None:
        self.root = root
        self.pid = pid or os.getpid()

    @classmethod
    def from_env(cls) -> Shared | None:
        root = os.environ.get(ENV)
        return cls(Path(root)) if root else None

    def publish(self, snapshot: dict[str, Any]) -> None:
        snapshot = {**snapshot, "pid": self.pid, "at": time.time()}
        tmp = self.root / f".{self.pid}.tmp"
        tmp.write_text(json.dumps(snapshot))
        os.replace(tmp, self.root / f"{self.pid}.json")

    def others(self) -> list[dict[str, Any]]:
        """The other workers' last snapshots, each with ``alive``."""
        out = []
        for path in sorted(self.root.glob("*.json")):
            if path.stem == str(self.pid):
                continue
            try:
                snapshot = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # gone between the listing and the read
            snapshot["alive"] = _alive(int(snapshot.get("pid", 0)))
            out.append(snapshot)
        return out


def families(registry) -> list[dict[str, Any]]:
    """A registry's metric families as JSON-ready dicts."""
    return [
        {
            "name": family.name,
            "type": family.type,
            "help": family.documentation,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
        for family in registry.collect()
    ]


def merged_families(
    own: list[dict[str, Any]], others: Iterable[dict[str, Any]]
) -> list[Metric]:
    """This worker's families plus the others': summed, but for ``_created`` (the
    earliest) and gauges (``GAUGE_MERGE`` over live workers)."""
    order: dict[str, Metric] = {}
    values: dict[tuple[str, str, tuple], list[float]] = {}
    sources = [(own, True)] + [(o.get("metrics", []), o["alive"]) for o in others]
    for fams, alive in sources:
        for fam in fams:
            name, kind = fam["name"], fam["type"]
            if name not in order:
                order[name] = Metric(name, fam["help"], kind)
            if kind == "gauge" and not alive:
                continue
            for sample, labels, value in fam["samples"]:
                key = (name, sample, tuple(sorted(labels.items())))
                values.setdefault(key, []).append(value)
    for (name, sample, labels), found in values.items():
        kind = order[name].type
        if kind == "gauge":
            value = GAUGE_MERGE.get(name, max)(found)
        elif sample.endswith("_created"):
            value = min(found)
        else:
            value = sum(found)
        order[name].add_sample(sample, dict(labels), value)
    return list(order.values())


class MergedRegistry:
    """What ``generate_latest`` needs: ``collect()``."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def sum_counts(rows: Iterable[list]) -> dict[tuple[str, str], int]:
    """[route, backend, n] rows of several workers, summed per (route, backend)."""
    out: dict[tuple[str, str], int] = {}
    for route, backend, n in rows:
        out[route, backend] = out.get((route, backend), 0) + n
    return out


def sum_shadow(
    tables: Iterable[dict[str, dict[str, int]]],
) -> dict[str, dict[str, int]]:
    """Shadow counts by route and result of several workers, summed."""
    out: dict[str, dict[str, int]] = {}
    for table in tables:
        for route, counts in table.items():
            mine = out.setdefault(route, {})
            for result, n in counts.items():
                mine[result] = mine.get(result, 0) + n
    return out


# --- the supervisor's side -----------------------------------------------------------


def make_folder() -> Path:
    """A fresh folder for this run; folders of supervisors that are gone are removed."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(PREFIX + "*"):
        found = re.match(re.escape(PREFIX) + r"(\d+)-", old.name)
        if found and not _alive(int(found[1])):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        # A zombie (a dead worker its supervisor has not reaped yet) serves nothing.
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True
