"""``manage.py relay --producer NAME``: the same loop as ``strangler relay``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from strangler import cli
from strangler.relay import cli as relay_cli


class Command(BaseCommand):
    help = "Publish this producer's outbox to RabbitMQ (or HTTP) until SIGTERM."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--producer", required=True)
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--drain", action="store_true")

    def handle(self, *args, **options) -> None:
        try:
            relay_cli.run(
                producer=options["producer"],
                batch_size=options["batch_size"],
                drain=options["drain"],
            )
        except cli.CommandError as exc:
            raise CommandError(str(exc)) from exc
