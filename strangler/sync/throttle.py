"""Throttling for long jobs: a rows-per-second ceiling and pauses while a probe is over its limit.

A probe is any callable returning a measurement (seconds, milliseconds…) or None when it cannot
measure; the job pauses while any probe is above its limit and prints why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from strangler.sync.db import Database


@dataclass
class Probe:
    name: str
    measure: Callable[[], float | None]
    limit: float
    unit: str


class Throttle:
    def __init__(
        self,
        *,
        rows_per_second: float | None = None,
        probes: list[Probe] | None = None,
        note: Callable[[str], None] = lambda message: None,
        pause_step: float = 1.0,
        max_pause_step: float = 10.0,
    ) -> None:
        self.rows_per_second = rows_per_second
        self.probes = probes or []
        self.note = note
        self.pause_step = pause_step
        self.max_pause_step = max_pause_step
        self.started = time.monotonic()
        self.paused_seconds = 0.0
        self.pauses = 0

    def wait(self, rows_this_run: int) -> None:
        """Sleep as needed before the next batch."""
        if self.rows_per_second:
            due = (
                self.started
                + self.paused_seconds
                + rows_this_run / self.rows_per_second
            )
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        step = self.pause_step
        while True:
            reason = self.over_limit()
            if reason is None:
                return
            self.pauses += 1
            self.note(f"pausing {step:.0f}s: {reason}")
            time.sleep(step)
            self.paused_seconds += step
            step = min(step * 2, self.max_pause_step)

    def over_limit(self) -> str | None:
        for probe in self.probes:
            value = probe.measure()
            if value is not None and value > probe.limit:
                return (
                    f"{probe.name} {value:,.1f}{probe.unit} is over the limit of "
                    f"{probe.limit:,.1f}{probe.unit}"
                )
        return None


def latency_probe(db: Database) -> Callable[[], float | None]:
    """Round trip of a trivial query on ``db`` in milliseconds."""

    def measure() -> float | None:
        start = time.perf_counter()
        db.fetchone("SELECT 1")
        db.end_read()
        return (time.perf_counter() - start) * 1000

    return measure
