"""Which external servers the tests can reach: prints the unreachable ones, space separated."""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def missing() -> list[str]:
    result = []
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres") or not reachable(database_url, 5432):
        result.append("postgres")
    amqp_url = os.environ.get("AMQP_URL", "")
    if not amqp_url or not reachable(amqp_url, 5672):
        result.append("rabbitmq")
    return result


if __name__ == "__main__":
    sys.stdout.write(" ".join(missing()))
