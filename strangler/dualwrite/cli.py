"""``strangler dualwrite set|show``: read and change the per-entity dual-write modes."""

from __future__ import annotations

import argparse
import json
import os
import sys

from strangler.cli import CommandError


def settings_module_for(service: str) -> str:
    """The conventional settings module of a deployable, used when none is given."""
    if service == "monolith":
        return "monolith.config.settings"
    return f"extracted.{service}_service.config.settings"


def setup_django(settings_module: str | None, service: str | None = None) -> None:
    """Configure Django from ``--settings``, ``DJANGO_SETTINGS_MODULE`` or the convention."""
    import django

    chosen = settings_module or os.environ.get("DJANGO_SETTINGS_MODULE")
    if not chosen:
        if service is None:
            raise CommandError("give --settings or set DJANGO_SETTINGS_MODULE")
        chosen = settings_module_for(service)
    os.environ["DJANGO_SETTINGS_MODULE"] = chosen
    try:
        django.setup()
    except ImportError as exc:
        raise CommandError(f"cannot load settings {chosen!r}: {exc}") from exc


def add_settings_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings",
        help="Django settings module (default: DJANGO_SETTINGS_MODULE, else the service's)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dualwrite",
        help="show or change per-entity dual-write modes (off, forward, reverse)",
        description="Modes are stored in the database and picked up by running processes "
        "within one second, without a restart.",
    )
    verbs = parser.add_subparsers(
        dest="dualwrite_verb", metavar="ACTION", required=True
    )
    show = verbs.add_parser(
        "show", help="print every entity's mode and the outbox backlog"
    )
    add_settings_argument(show)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=handle_show)
    set_ = verbs.add_parser("set", help="set one entity's mode")
    add_settings_argument(set_)
    set_.add_argument("entity", help="vote, choice or question")
    set_.add_argument("mode", help="off, forward or reverse")
    set_.add_argument(
        "--dry-run", action="store_true", help="validate and say what changes"
    )
    set_.set_defaults(handler=handle_set)


def handle_show(args: argparse.Namespace) -> int:
    setup_django(args.settings)
    from strangler.dualwrite.modes import all_modes
    from strangler.dualwrite.outbox import lag_seconds, unsent_count

    modes = all_modes()
    backlog = {"unsent": unsent_count(), "lag_seconds": round(lag_seconds(), 3)}
    if args.json:
        print(json.dumps({"modes": modes, "outbox": backlog}))
        return 0
    for entity, mode in sorted(modes.items()):
        print(f"{entity:<12} {mode}")
    print(f"outbox: {backlog['unsent']} unsent, oldest {backlog['lag_seconds']}s")
    return 0


def handle_set(args: argparse.Namespace) -> int:
    setup_django(args.settings)
    from strangler.dualwrite.models import Mode
    from strangler.dualwrite.modes import entities, get_mode, set_mode

    if args.entity not in entities():
        raise CommandError(
            f"unknown entity {args.entity!r}; known: {', '.join(entities())}"
        )
    if args.mode not in Mode.values:
        raise CommandError(
            f"unknown mode {args.mode!r}; expected {', '.join(Mode.values)}"
        )
    if args.dry_run:
        print(
            f"{args.entity}: {get_mode(args.entity)} -> {args.mode} (dry run, unchanged)"
        )
        return 0
    previous = set_mode(args.entity, args.mode)
    print(f"{args.entity}: {previous} -> {args.mode}")
    print("running processes pick this up within 1s", file=sys.stderr)
    return 0
