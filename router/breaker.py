"""A per-backend circuit breaker: open after N consecutive failures, half-open after a pause
to let one probe through, closed again when the probe succeeds."""

from __future__ import annotations

import time

from router.metrics import BREAKER_STATE

CLOSED, HALF_OPEN, OPEN = "closed", "half-open", "open"
_GAUGE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class Breaker:
    def __init__(self, backend: str, failures: int, reset_seconds: float) -> None:
        self.backend = backend
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.state = CLOSED
        self.count = 0
        self.opened_at = 0.0
        self._set(CLOSED)

    def _set(self, state: str) -> None:
        self.state = state
        BREAKER_STATE.labels(self.backend).set(_GAUGE[state])

    def allow(self) -> bool:
        """May a request go to this backend now? In half-open, only the one probe may."""
        if self.state == CLOSED:
            return True
        now = time.monotonic()
        # A probe that never reported (cancelled) must not wedge the breaker half-open.
        if now - self.opened_at >= self.reset_seconds:
            self.opened_at = now
            if self.state == OPEN:
                self._set(HALF_OPEN)
            return True
        return False

    def success(self) -> None:
        self.count = 0
        if self.state != CLOSED:
            self._set(CLOSED)

    def failure(self) -> None:
        self.count += 1
        if self.state == HALF_OPEN or self.count >= self.failures:
            self.opened_at = time.monotonic()
            if self.state != OPEN:
                self._set(OPEN)
