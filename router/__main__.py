"""``python -m router``: serve the router with uvicorn (uvloop + httptools).

Environment: ``STRANGLER_ROUTER_DIR`` (config store), ``ROUTER_HOST`` / ``ROUTER_PORT``
(default 127.0.0.1:8080), ``ROUTER_WORKERS`` (default 1), ``STRANGLER_OPERATOR_TOKEN``,
``STRANGLER_ROUTER_TOKEN``, ``ROUTER_ACCESS_LOG`` (1/0). ``--bootstrap FILE`` makes FILE
version 1 when the store is still empty.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from strangler.routing.schema import ConfigError
from strangler.routing.store import RouteStore, StoreError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("ROUTER_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("ROUTER_PORT", "8080"))
    )
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("ROUTER_WORKERS", "1"))
    )
    parser.add_argument(
        "--bootstrap", help="config file to install when the store is empty"
    )
    args = parser.parse_args(argv)
    if args.bootstrap:
        store = RouteStore()
        if store.current_version() is None:
            try:
                text = open(args.bootstrap, encoding="utf-8").read()  # noqa: SIM115
                store.commit(
                    text,
                    action=f"bootstrap {args.bootstrap}",
                    why="router first start",
                    who="router",
                    expect_parent=None,
                )
            except (OSError, ConfigError, StoreError) as exc:
                print(f"router: --bootstrap {args.bootstrap}: {exc}", file=sys.stderr)
                return 2
    uvicorn.run(
        "router.asgi:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        log_level=os.environ.get("ROUTER_LOG_LEVEL", "info").lower(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
