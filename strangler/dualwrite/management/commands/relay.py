"""``manage.py relay --producer NAME``: the same loop and options as ``strangler relay``."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError

from strangler import cli
from strangler.relay import cli as relay_cli


class Command(BaseCommand):
    help = "Publish this producer's outbox to RabbitMQ (or HTTP) until SIGTERM."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--producer", required=True)
        relay_cli.add_relay_options(parser)

    def handle(self, *args, **options) -> None:
        stop = relay_cli.stop_on_signals()
        namespace = argparse.Namespace(
            producer=options["producer"],
            batch_size=options["batch_size"],
            drain=options["drain"],
            workers=options["workers"],
            purge_sent_older_than=options["purge_sent_older_than"],
            dry_run=options["dry_run"],
        )
        try:
            relay_cli.check_options(namespace)
            relay_cli.execute(namespace, stop)
        except cli.CommandError as exc:
            raise CommandError(str(exc)) from exc
