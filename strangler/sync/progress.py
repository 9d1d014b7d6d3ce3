"""Progress lines on stderr: rows done / total, rate over a recent window, and ETA."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Reports ``done`` against ``total`` at most every ``interval`` seconds.

    The rate is measured over the last ``window`` seconds, so a pause or a slow patch shows
    up at once instead of being averaged away; the ETA is remaining rows at that rate.
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        done: int = 0,
        out: TextIO | None = None,
        interval: float = 1.0,
        window: float = 10.0,
    ) -> None:
        self.label = label
        self.total = total
        self.done = done
        self.out = out if out is not None else sys.stderr
        self.interval = interval
        self.window = window
        self.samples: deque[tuple[float, int]] = deque([(time.monotonic(), done)])
        self.last_print = 0.0
        self.printed_done = -1

    def rate(self) -> float:
        """Rows per second over the window (0 until two samples exist)."""
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def eta(self) -> float | None:
        rate = self.rate()
        remaining = max(self.total - self.done, 0)
        return remaining / rate if rate > 0 else None

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        self.done = done
        self.total = max(self.total, done)
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()
        due = now - self.last_print >= self.interval
        if (force and done != self.printed_done) or due:
            self.last_print, self.printed_done = now, done
            self.out.write(self.line() + "\n")
            self.out.flush()

    def line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = self.eta()
        eta_text = _duration(eta) if eta is not None else "--:--"
        if self.done >= self.total:
            eta_text = "0:00"
        return (
            f"{self.label}: {self.done:,}/{self.total:,} rows ({pct:.1f}%)"
            f" {self.rate():,.0f} rows/s ETA {eta_text}"
        )

    def note(self, message: str) -> None:
        self.out.write(f"{self.label}: {message}\n")
        self.out.flush()
