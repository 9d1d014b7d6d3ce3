"""The relay loop: claim a batch, publish it, mark it sent, all in one transaction."""

from __future__ import annotations

import logging
import os
import threading
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from strangler.dualwrite.outbox import unsent_count
from strangler.relay.claim import claim_batch, mark_failed, mark_sent
from strangler.relay.purge import purge_sent
from strangler.relay.transports import (
    AmqpTransport,
    HttpTransport,
    Transport,
    TransportError,
)

logger = logging.getLogger("strangler.relay")


def relay_settings() -> dict:
    return getattr(settings, "STRANGLER_RELAY", {})


def default_transport() -> Transport:
    """RabbitMQ when ``AMQP_URL`` is set, else HTTP to ``STRANGLER_EVENT_TARGETS``."""
    url = os.environ.get("AMQP_URL") or relay_settings().get("AMQP_URL")
    if url:
        return AmqpTransport(url)
    raw = os.environ.get("STRANGLER_EVENT_TARGETS", "")
    targets = [t.strip() for t in raw.split(",") if t.strip()] or list(
        relay_settings().get("HTTP_TARGETS", [])
    )
    if not targets:
        raise ValueError(
            "no transport: set AMQP_URL for RabbitMQ, or STRANGLER_EVENT_TARGETS (comma "
            "separated consumer URLs ending in /_strangler/internal/events) for HTTP"
        )
    return HttpTransport(targets)


class Relay:
    def __init__(
        self,
        transport: Transport,
        *,
        producer: str,
        batch_size: int = 500,
        poll_interval: float = 0.05,
        max_backoff: float = 30.0,
        purge_sent_older_than: float | None = None,
        purge_interval: float = 60.0,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        self.transport = transport
        self.producer = producer
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.using = using
        self.sent_total = 0
        self.purge_sent_older_than = purge_sent_older_than
        self.purge_interval = purge_interval
        self.purged_total = 0
        self._next_purge = 0.0

    def run_once(self) -> int:
        """Publish one batch; return how many events the broker confirmed."""
        with transaction.atomic(using=self.using):
            rows = claim_batch(self.batch_size, self.using)
            if not rows:
                return 0
            result = self.transport.publish(rows)
            mark_sent(result.sent, self.using)
            if result.failed:
                logger.warning(
                    "%d events not accepted: %s",
                    len(result.failed),
                    next(iter(result.failed.values())),
                )
                mark_failed(result.failed, self.using)
        self.sent_total += len(result.sent)
        return len(result.sent)

    def housekeep(self) -> None:
        """Purge long-sent rows when asked to, at most once per ``purge_interval``."""
        if self.purge_sent_older_than is None or time.monotonic() < self._next_purge:
            return
        purged = purge_sent(older_than=self.purge_sent_older_than, using=self.using)
        self._next_purge = time.monotonic() + self.purge_interval
        self.purged_total += purged
        if purged:
            logger.info("relay %s: purged %d sent events", self.producer, purged)

    def run(self, stop: threading.Event, *, drain: bool = False) -> None:
        """Relay until ``stop`` is set (or, with ``drain``, until the outbox is empty)."""
        backoff = 0.2
        last_report = time.monotonic()
        reported = 0
        while not stop.is_set():
            try:
                self.housekeep()
                sent = self.run_once()
                backoff = 0.2
            except TransportError as exc:
                logger.warning(
                    "relay %s: broker unavailable (%s); retrying in %.1fs",
                    self.producer,
                    exc,
                    backoff,
                )
                self.transport.close()
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            except DatabaseError as exc:
                logger.warning(
                    "relay %s: database error (%s); retrying in %.1fs",
                    self.producer,
                    exc,
                    backoff,
                )
                connections[self.using].close()
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            now = time.monotonic()
            if now - last_report >= 5:
                rate = (self.sent_total - reported) / (now - last_report)
                logger.info(
                    "relay %s: %d sent (%.0f/s)", self.producer, self.sent_total, rate
                )
                last_report, reported = now, self.sent_total
            if sent == 0:
                if drain and unsent_count(self.using) == 0:
                    break
                stop.wait(self.poll_interval)
        self.transport.close()


def run_relays(relays: list[Relay], stop: threading.Event, *, drain: bool) -> None:
    """Run ``relays`` at once in this process, each in its own thread with its own database
    connection and transport, under the claiming rules of separate relay processes
    (``claim.py``: no row twice, order per aggregate kept). While one waits for the broker
    to confirm its batch, another claims and marks the next: the broker's work and the
    database's overlap. An unexpected error in any of them stops them all and is raised."""
    failures: list[BaseException] = []

    def work(relay: Relay) -> None:
        try:
            relay.run(stop, drain=drain)
        except BaseException as exc:  # re-raised in the calling thread below
            failures.append(exc)
            stop.set()
        finally:
            connections.close_all()  # this thread's own connections

    threads = [
        threading.Thread(target=work, args=(relay,), name=f"relay-{n}", daemon=True)
        for n, relay in enumerate(relays[1:], start=1)
    ]
    for thread in threads:
        thread.start()
    try:
        relays[0].run(stop, drain=drain)
    except BaseException:
        stop.set()
        raise
    finally:
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
