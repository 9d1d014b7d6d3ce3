"""The benchmarks run on the project's virtualenv: without it, say so and exit 2 rather
than fail on an import (or, for the router bench, on a server that never comes up)."""

from __future__ import annotations

import importlib.util
import sys


def require(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"bench: {sys.executable} lacks {', '.join(missing)}; run it with the "
            f"project's virtualenv: .venv/bin/python {sys.argv[0]} (./scripts/test "
            "makes .venv)",
            file=sys.stderr,
        )
        raise SystemExit(2)
