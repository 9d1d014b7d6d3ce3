"""``manage.py consume --service NAME``: the same loop as ``strangler consume``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from strangler import cli
from strangler.consumer import cli as consumer_cli


class Command(BaseCommand):
    help = "Apply events from this service's RabbitMQ queue until SIGTERM."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--service", required=True)
        parser.add_argument("--declare-only", action="store_true")
        parser.add_argument("--idle-exit", type=float, default=None)

    def handle(self, *args, **options) -> None:
        try:
            consumer_cli.run(
                service=options["service"],
                declare_only=options["declare_only"],
                idle_exit=options["idle_exit"],
            )
        except cli.CommandError as exc:
            raise CommandError(str(exc)) from exc
