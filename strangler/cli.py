"""The ``strangler`` command line: one verb per operator task.

Each verb lives in its own module with ``register(subparsers)``, which adds its parser and sets
``handler`` (a function taking the parsed args and returning an exit code). Results go to
stdout (``--json`` where offered), progress and errors to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from strangler import __version__

# Modules that contribute verbs; imported only when the CLI runs.
VERB_MODULES: list[str] = [
    "strangler.routing.cli",
    "strangler.dualwrite.cli",
    "strangler.relay.cli",
    "strangler.consumer.cli",
    "strangler.parity.cli",
    "strangler.sync.cli",
    "strangler.plan.cli",
]


class CommandError(Exception):
    """A failure to report as one line on stderr with a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strangler",
        description="Carve services out of a Django monolith, one endpoint and table at a time.",
    )
    parser.add_argument(
        "--version", action="version", version=f"strangler {__version__}"
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for module_name in VERB_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except CommandError as exc:
        print(f"strangler {args.verb}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"strangler {args.verb}: interrupted", file=sys.stderr)
        return 130
