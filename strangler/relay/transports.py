"""How the relay hands a batch to the consumers: RabbitMQ with publisher confirms, or HTTP.

Both return which rows the other side has durably accepted; anything else stays in the outbox
and is retried, so delivery is at least once and the consumers' inbox makes it exactly once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import pika
import pika.exceptions
import requests

from strangler.events.envelope import EXCHANGE
from strangler.events.http import internal_token
from strangler.relay.claim import OutboxRow

logger = logging.getLogger("strangler.relay")


class TransportError(Exception):
    """The broker or consumer could not be reached; the whole batch is retried later."""


@dataclass
class PublishResult:
    sent: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


class Transport(Protocol):
    def publish(self, rows: list[OutboxRow]) -> PublishResult: ...

    def close(self) -> None: ...


class AmqpTransport:
    """Publishes a batch with ``mandatory`` set, then waits once for every confirm.

    pika's ``BlockingChannel.confirm_delivery`` waits for each message's confirm in turn (a
    round trip per event); enabling confirms on the underlying channel instead lets a whole
    batch be in flight and be confirmed by a few ``multiple`` acks.
    """

    def __init__(self, url: str, *, confirm_timeout: float = 15.0) -> None:
        self.url = url
        self.confirm_timeout = confirm_timeout
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._next_tag = 0
        self._low_tag = 1
        self._pending: dict[int, int] = {}
        self._acked: list[int] = []
        self._nacked: list[int] = []
        self._returned: dict[str, str] = {}

    def connect(self) -> None:
        params = pika.URLParameters(self.url)
        params.heartbeat = 30
        params.blocked_connection_timeout = self.confirm_timeout
        params.socket_timeout = 5
        params.connection_attempts = 1
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        selected: list[bool] = []
        channel._impl.confirm_delivery(
            ack_nack_callback=self._on_confirm,
            callback=lambda _frame: selected.append(True),
        )
        deadline = time.monotonic() + self.confirm_timeout
        while not selected and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        if not selected:
            connection.close()
            raise TransportError("broker did not enable publisher confirms")
        channel.add_on_return_callback(self._on_return)
        self._connection, self._channel = connection, channel
        self._next_tag, self._low_tag = 0, 1

    def publish(self, rows: list[OutboxRow]) -> PublishResult:
        try:
            if self._channel is None or not self._channel.is_open:
                self.close()
                self.connect()
            return self._publish(rows)
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.close()
            raise TransportError(f"RabbitMQ: {exc!r}") from exc

    def _publish(self, rows: list[OutboxRow]) -> PublishResult:
        self._pending, self._acked, self._nacked, self._returned = {}, [], [], {}
        # Publish on the underlying channel: BlockingChannel.basic_publish writes and polls
        # the socket once per message. Here pika marshals each message as usual, but its
        # frames are collected instead of queued one by one (three send() calls a message)
        # and the whole batch goes out as one buffer, then its confirms are awaited together.
        channel = self._channel._impl
        connection = channel.connection
        frames: list[bytes] = []
        connection._output_marshaled_frames = frames.extend
        try:
            for row in rows:
                self._next_tag += 1
                self._pending[self._next_tag] = row.id
                channel.basic_publish(
                    EXCHANGE,
                    row.type,
                    row.body,
                    pika.BasicProperties(
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=row.event_id,
                        type=row.type,
                    ),
                    mandatory=True,
                )
        finally:
            del connection._output_marshaled_frames  # pika's own method again
        self._low_tag = self._next_tag - len(rows) + 1
        connection._output_marshaled_frames([b"".join(frames)])
        deadline = time.monotonic() + self.confirm_timeout
        while self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError(
                    f"{len(self._pending)} of {len(rows)} publishes unconfirmed after "
                    f"{self.confirm_timeout}s"
                )
            # Confirms reach our callback directly, which does not end a longer
            # process_data_events early; short slices keep the wait close to the last ack.
            self._connection.process_data_events(time_limit=0.002)
        self._connection.process_data_events(time_limit=0)
        result = PublishResult()
        by_event = {row.id: row.event_id for row in rows}
        for row_id in self._acked:
            reason = self._returned.get(by_event[row_id])
            if reason is None:
                result.sent.append(row_id)
            else:
                result.failed[row_id] = reason
        for row_id in self._nacked:
            result.failed[row_id] = "broker nacked the message"
        return result

    def _on_confirm(self, frame) -> None:
        """Delivery tags are consecutive, so a multiple ack settles every tag from the lowest
        unsettled one up to its own: O(acked), not a scan of all pending per ack frame."""
        method = frame.method
        if method.multiple:
            tags = range(self._low_tag, method.delivery_tag + 1)
            self._low_tag = max(self._low_tag, method.delivery_tag + 1)
        else:
            tags = (method.delivery_tag,)
        target = (
            self._acked if isinstance(method, pika.spec.Basic.Ack) else self._nacked
        )
        for tag in tags:
            row_id = self._pending.pop(tag, None)
            if row_id is not None:
                target.append(row_id)

    def _on_return(self, _channel, method, properties, _body) -> None:
        self._returned[properties.message_id] = (
            f"unroutable: no queue is bound to {method.routing_key!r} "
            f"({method.reply_code} {method.reply_text}); start its consumer first"
        )

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                logger.debug(
                    "closing a broken RabbitMQ connection failed", exc_info=True
                )


class HttpTransport:
    """POSTs each batch to every consumer's ``/_strangler/internal/events``; a batch counts as
    sent only when every target answered 2xx after committing it."""

    def __init__(self, targets: list[str], *, timeout: float = 15.0) -> None:
        if not targets:
            raise ValueError("the HTTP transport needs at least one target URL")
        self.targets = targets
        self.timeout = timeout
        self._session = requests.Session()

    def publish(self, rows: list[OutboxRow]) -> PublishResult:
        body = b'{"events":[' + b",".join(row.body for row in rows) + b"]}"
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {internal_token()}",
        }
        for target in self.targets:
            try:
                response = self._session.post(
                    target, data=body, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                raise TransportError(f"{target}: {exc}") from exc
            if response.status_code >= 300:
                raise TransportError(
                    f"{target}: HTTP {response.status_code} {response.text[:200]}"
                )
        return PublishResult(sent=[row.id for row in rows])

    def close(self) -> None:
        self._session.close()
        self._session = requests.Session()
