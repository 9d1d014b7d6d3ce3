"""``strangler relay --producer NAME``: publish a producer's outbox until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from strangler.cli import CommandError
from strangler.dualwrite.cli import add_settings_argument, setup_django

DEFAULT_WORKERS = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "relay",
        help="publish a producer's outbox to RabbitMQ (or HTTP) until SIGTERM",
        description="Claims committed outbox rows in batches (FOR UPDATE SKIP LOCKED), "
        "publishes them with publisher confirms and marks them sent. Several relays may run "
        "at once. Uses RabbitMQ when AMQP_URL is set, else HTTP to STRANGLER_EVENT_TARGETS.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=handle)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--producer", required=True, help="monolith, vote or choice")
    add_settings_argument(parser)
    add_relay_options(parser)


def add_relay_options(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``manage.py relay`` (which has Django's own ``--settings``)."""
    parser.add_argument("--batch-size", type=int, default=500, help="rows per claim")
    parser.add_argument(
        "--drain", action="store_true", help="exit once the outbox is empty"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="relay loops in this process, each with its own database and broker "
        "connection: one claims and marks while another waits for confirms (default "
        f"{DEFAULT_WORKERS} on PostgreSQL, 1 on SQLite, which has one writer at a time)",
    )
    parser.add_argument(
        "--purge-sent-older-than",
        type=float,
        metavar="SECONDS",
        help="also delete outbox rows sent more than SECONDS ago, in batches, at start "
        "and every minute",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with --purge-sent-older-than: print how many rows would be purged and exit",
    )


def handle(args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    check_options(args)
    setup_django(args.settings, args.producer)
    return execute(args, stop)


def check_options(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 1:
        raise CommandError("--workers must be at least 1")
    if args.purge_sent_older_than is not None and args.purge_sent_older_than < 0:
        raise CommandError("--purge-sent-older-than must be at least 0 seconds")
    if args.dry_run and args.purge_sent_older_than is None:
        raise CommandError("--dry-run only applies to --purge-sent-older-than")


def execute(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """The relay (or the purge dry run) once Django is set up for ``args.producer``."""
    if args.dry_run:
        from strangler.relay.purge import purge_sent

        count = purge_sent(older_than=args.purge_sent_older_than, dry_run=True)
        print(
            f"{count} sent events older than {args.purge_sent_older_than:g}s (dry run)"
        )
        return 0
    return run(
        producer=args.producer,
        batch_size=args.batch_size,
        drain=args.drain,
        stop=stop,
        purge_sent_older_than=args.purge_sent_older_than,
        workers=args.workers,
    )


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT; installed before Django loads so that a signal during
    start-up also ends the process cleanly."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def run(
    *,
    producer: str,
    batch_size: int,
    drain: bool,
    stop: threading.Event | None = None,
    purge_sent_older_than: float | None = None,
    workers: int | None = None,
) -> int:
    """Run a relay in this process; SIGTERM/SIGINT finish the current batch and exit 0."""
    from django.conf import settings
    from django.db import DEFAULT_DB_ALIAS, connections

    from strangler.relay.runner import Relay, default_transport, run_relays

    if batch_size < 1:
        raise CommandError("--batch-size must be at least 1")
    service = getattr(settings, "SERVICE_NAME", producer)
    if service != producer:
        raise CommandError(
            f"--producer {producer} but the settings are for {service!r}; pass --settings"
        )
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    vendor = connections[DEFAULT_DB_ALIAS].vendor
    if workers is None:
        workers = DEFAULT_WORKERS if vendor == "postgresql" else 1
    if workers > 1 and vendor == "sqlite":
        raise CommandError(
            f"--workers {workers}: SQLite has one writer at a time, so more relay loops "
            "would only queue for its lock; use --workers 1 (the default on SQLite)"
        )
    try:
        transports = [default_transport() for _ in range(workers)]
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    stop = stop or stop_on_signals()
    relays = [
        Relay(
            transport,
            producer=producer,
            batch_size=batch_size,
            # One of them purges; the others only relay.
            purge_sent_older_than=purge_sent_older_than if n == 0 else None,
        )
        for n, transport in enumerate(transports)
    ]
    run_relays(relays, stop, drain=drain)
    sent = [relay.sent_total for relay in relays]
    shares = f" (by worker: {', '.join(map(str, sent))})" if len(sent) > 1 else ""
    print(f"relay {producer}: {sum(sent)} events sent{shares}", file=sys.stderr)
    if purge_sent_older_than is not None:
        print(f"relay {producer}: {relays[0].purged_total} sent events purged")
    return 0
