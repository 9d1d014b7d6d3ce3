"""The HTTP transport's wire format: where the relay POSTs batches and how it authenticates.

Used when ``AMQP_URL`` is unset (the embedded default). The body is ``{"events": [envelope,
...]}``; the bearer token is ``STRANGLER_EVENTS_TOKEN`` or, on one machine, a file under
``var/`` shared by every process.
"""

from __future__ import annotations

import os
import secrets

from strangler import conf

PATH = "_strangler/internal/events"


def internal_token() -> str:
    value = os.environ.get("STRANGLER_EVENTS_TOKEN")
    if value:
        return value
    path = conf.var_dir() / "events_token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()
