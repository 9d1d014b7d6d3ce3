"""The RabbitMQ consumer loop: batches deliveries, applies each batch in one transaction on an
applier thread while the next one is received, acks after commit, and sends poison messages to
the dead-letter queue with the reason in headers.

Topology per consumer: durable queue ``QUEUE`` bound to ``strangler.events`` with the
handlers' patterns, and durable ``QUEUE.dlq``. A failing event is republished to ``QUEUE`` with
``x-strangler-attempts`` + 1 (after the republish is confirmed, the original is acked); after
``MAX_ATTEMPTS`` it goes to the DLQ with ``x-strangler-reason``. Malformed or unknown events go
to the DLQ at once: retrying cannot fix them.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import pika
import pika.exceptions
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

from strangler.consumer.apply import Outcome, apply_events
from strangler.consumer.handlers import Handlers
from strangler.events.envelope import EXCHANGE, Event, InvalidEvent

logger = logging.getLogger("strangler.consumer")

ATTEMPTS_HEADER = "x-strangler-attempts"
REASON_HEADER = "x-strangler-reason"


@dataclass
class Delivery:
    tag: int
    properties: pika.BasicProperties
    body: bytes


@dataclass
class Pending:
    """A batch handed to the applier thread: all its deliveries (acked together once it
    has committed) and those whose events it applies, in order."""

    batch: list[Delivery]
    valid: list[Delivery]
    future: Future


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def declare_topology(channel, queue: str, bindings: list[str]) -> None:
    """Declare the exchange, the consumer's queue with its DLQ, and the bindings."""
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(dead_letter_queue(queue), durable=True)
    channel.queue_declare(
        queue,
        durable=True,
        arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letter_queue(queue),
        },
    )
    for pattern in bindings:
        channel.queue_bind(queue, EXCHANGE, routing_key=pattern)


class AmqpConsumer:
    def __init__(
        self,
        url: str,
        handlers: Handlers,
        *,
        queue: str,
        bindings: list[str] | None = None,
        prefetch: int = 500,
        batch_size: int = 250,
        max_attempts: int = 5,
        linger: float = 0.005,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        self.url = url
        self.handlers = handlers
        self.queue = queue
        self.bindings = bindings if bindings is not None else handlers.bindings()
        # Room for the next batch while one is applied: the broker never waits for our acks.
        self.prefetch = max(prefetch, 2 * batch_size)
        self.batch_size = batch_size
        self.linger = linger
        self.max_attempts = max_attempts
        self.using = using
        self.counts: dict[str, int] = dict.fromkeys(
            [*(o.value for o in Outcome), "dead_lettered", "retried"], 0
        )
        self._buffer: list[Delivery] = []
        self._pending: Pending | None = None
        self._applier: ThreadPoolExecutor | None = None
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._publisher = None

    def connect(self) -> None:
        params = pika.URLParameters(self.url)
        params.heartbeat = 30
        params.connection_attempts = 1
        params.socket_timeout = 5
        self._connection = pika.BlockingConnection(params)
        self._channel = self._connection.channel()
        declare_topology(self._channel, self.queue, self.bindings)
        self._channel.basic_qos(prefetch_count=self.prefetch)
        self._publisher = self._connection.channel()
        self._publisher.confirm_delivery()
        self._channel.basic_consume(self.queue, self._on_message)

    def close(self) -> None:
        self._buffer = []
        self._abandon()
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                logger.debug(
                    "closing a broken RabbitMQ connection failed", exc_info=True
                )

    def run(self, stop: threading.Event, *, idle_exit: float | None = None) -> None:
        """Consume until ``stop`` is set (or the queue has been idle ``idle_exit`` seconds)."""
        self._applier = ThreadPoolExecutor(1, thread_name_prefix="strangler-apply")
        try:
            self._run(stop, idle_exit)
        finally:
            self._applier.submit(self._close_database).result()
            self._applier.shutdown()

    def _run(self, stop: threading.Event, idle_exit: float | None) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                if self._connection is None:
                    self.connect()
                    backoff = 0.2
                if self._consume_until(stop, idle_exit):
                    break
            except (pika.exceptions.AMQPError, OSError) as exc:
                logger.warning(
                    "consumer %s: broker unavailable (%r); retrying in %.1fs",
                    self.queue,
                    exc,
                    backoff,
                )
            except (OperationalError, InterfaceError) as exc:
                logger.warning(
                    "consumer %s: database unavailable (%s); retrying in %.1fs",
                    self.queue,
                    exc,
                    backoff,
                )
                self._applier.submit(self._close_database).result()
            else:
                continue
            self._abandon()
            self.close()
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
        self.close()

    def _close_database(self) -> None:
        """On the applier thread, whose connection it is (Django's are per thread)."""
        connections[self.using].close()

    def _consume_until(self, stop: threading.Event, idle_exit: float | None) -> bool:
        """Receive the next batch while the applier thread commits the current one: the
        broker's frames are decoded while the database works."""
        idle_since = time.monotonic()
        while not stop.is_set():
            self._fill(wait=0.002 if self._pending else 0.05)
            if self._pending and (
                self._pending.future.done() or len(self._buffer) >= self.batch_size
            ):
                self._finish()
            if self._buffer and not self._pending:
                self._start(self._take())
            if self._buffer or self._pending:
                idle_since = time.monotonic()
            elif idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                break
        if self._pending:
            self._finish()
        return True

    def _fill(self, wait: float) -> None:
        """Wait up to ``wait`` for a delivery, then up to ``linger`` for a full batch: a few
        milliseconds of latency buy batches large enough to amortise the commit."""
        self._connection.process_data_events(time_limit=0 if self._buffer else wait)
        deadline = time.monotonic() + self.linger
        while 0 < len(self._buffer) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._connection.process_data_events(time_limit=remaining)

    def _on_message(self, _channel, method, properties, body: bytes) -> None:
        self._buffer.append(Delivery(method.delivery_tag, properties, body))

    def _take(self) -> list[Delivery]:
        batch = self._buffer[: self.batch_size]
        self._buffer = self._buffer[self.batch_size :]
        return batch

    def _start(self, batch: list[Delivery]) -> None:
        """Dead-letter what cannot be applied and hand the rest to the applier thread."""
        valid: list[tuple[Delivery, Event]] = []
        for delivery in batch:
            try:
                event = Event.from_json(delivery.body)
                self.handlers.get(event.type)
            except InvalidEvent as exc:
                self._dead_letter(delivery, str(exc))
                continue
            valid.append((delivery, event))
        future = self._applier.submit(self._apply, [event for _, event in valid])
        self._pending = Pending(batch, [delivery for delivery, _ in valid], future)

    def _apply(self, events: list[Event]) -> list[Outcome | Exception]:
        """On the applier thread: each event's outcome, or the error its handler raised.
        A failing batch is retried event by event so that only the culprit fails."""
        if not events:
            return []
        try:
            return apply_events(events, self.handlers, self.using)
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            logger.info("batch of %d failed; applying one by one", len(events))
        results: list[Outcome | Exception] = []
        for event in events:
            try:
                results += apply_events([event], self.handlers, self.using)
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:
                results.append(exc)
        return results

    def _finish(self) -> None:
        """Wait for the batch in flight, retry or dead-letter its failures, ack it."""
        pending, self._pending = self._pending, None
        results = pending.future.result()
        for delivery, result in zip(pending.valid, results, strict=True):
            if isinstance(result, Exception):
                self._retry(delivery, result)
            else:
                self.counts[result.value] += 1
        self._channel.basic_ack(pending.batch[-1].tag, multiple=True)

    def _abandon(self) -> None:
        """Let the batch in flight end without acking it: the broker redelivers it and the
        inbox recognises whatever it committed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.future.exception()

    def _retry(self, delivery: Delivery, exc: Exception) -> None:
        reason = "".join(traceback.format_exception_only(exc)).strip()
        attempts = int((delivery.properties.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1
        if attempts >= self.max_attempts:
            self._dead_letter(
                delivery, f"handler failed {attempts} times: {reason}", attempts
            )
        else:
            self._republish(
                delivery,
                self.queue,
                {ATTEMPTS_HEADER: attempts, REASON_HEADER: reason},
            )
            self.counts["retried"] += 1

    def _dead_letter(self, delivery: Delivery, reason: str, attempts: int = 1) -> None:
        logger.warning("consumer %s: dead-lettering a message: %s", self.queue, reason)
        self._republish(
            delivery,
            dead_letter_queue(self.queue),
            {
                REASON_HEADER: reason[:4000],
                ATTEMPTS_HEADER: attempts,
                "x-strangler-queue": self.queue,
                "x-strangler-failed-at": datetime.now(UTC).isoformat(),
            },
        )
        self.counts["dead_lettered"] += 1

    def _republish(self, delivery: Delivery, queue: str, headers: dict) -> None:
        props = delivery.properties
        self._publisher.basic_publish(
            "",
            queue,
            delivery.body,
            pika.BasicProperties(
                content_type=props.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=props.message_id,
                type=props.type,
                headers={**(props.headers or {}), **headers},
            ),
        )
