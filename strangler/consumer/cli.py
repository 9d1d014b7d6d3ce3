"""``strangler consume --service NAME``: apply events from the service's queue until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from strangler.cli import CommandError
from strangler.dualwrite.cli import add_settings_argument, setup_django
from strangler.relay.cli import stop_on_signals


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "consume",
        help="apply events from this service's RabbitMQ queue until SIGTERM",
        description="Declares the service's durable queue and dead-letter queue, binds it "
        "to the handlers' event types and applies deliveries exactly once (inbox), acking "
        "after commit. Handlers come from settings STRANGLER_CONSUMER['HANDLERS'].",
    )
    add_arguments(parser)
    parser.set_defaults(handler=handle)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", required=True, help="vote, choice or monolith")
    add_settings_argument(parser)
    parser.add_argument(
        "--declare-only",
        action="store_true",
        help="declare the queue, DLQ and bindings, then exit",
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after the queue has been empty this long",
    )


def handle(args: argparse.Namespace) -> int:
    setup_django(args.settings, args.service)
    return run(
        service=args.service, declare_only=args.declare_only, idle_exit=args.idle_exit
    )


def run(
    *,
    service: str,
    declare_only: bool = False,
    idle_exit: float | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Consume in this process; SIGTERM/SIGINT finish the current batch, ack it and exit 0."""
    import pika
    from django.core.exceptions import ImproperlyConfigured

    from strangler.consumer.amqp import AmqpConsumer, declare_topology
    from strangler.consumer.handlers import consumer_settings, load_handlers

    url = os.environ.get("AMQP_URL")
    if not url:
        raise CommandError(
            "AMQP_URL is not set: with the HTTP transport, events arrive at the service's "
            "/_strangler/internal/events endpoint and no consumer process is needed"
        )
    try:
        config = consumer_settings()
        handlers = load_handlers()
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from exc
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    consumer = AmqpConsumer(
        url,
        handlers,
        queue=config.get("QUEUE") or f"{service}.events",
        bindings=config.get("BINDINGS"),
        prefetch=int(config.get("PREFETCH", 500)),
        batch_size=int(config.get("BATCH_SIZE", 250)),
        max_attempts=int(config.get("MAX_ATTEMPTS", 5)),
    )
    if declare_only:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        declare_topology(connection.channel(), consumer.queue, consumer.bindings)
        connection.close()
        print(f"declared {consumer.queue} bound to {', '.join(consumer.bindings)}")
        return 0
    stop = stop or stop_on_signals()
    consumer.run(stop, idle_exit=idle_exit)
    print(f"consume {service}: {consumer.counts}", file=sys.stderr)
    return 0
