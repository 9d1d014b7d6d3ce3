"""The monolith's settings plus a test consumer, for relay and consumer subprocesses."""

from __future__ import annotations

import os

from monolith.config.settings import *  # noqa: F403

STRANGLER_CONSUMER = {
    "QUEUE": os.environ.get("H_EVENTS_QUEUE", "h_events.test"),
    "HANDLERS": "tests.integration.events.handlers",
    "MAX_ATTEMPTS": 3,
}
