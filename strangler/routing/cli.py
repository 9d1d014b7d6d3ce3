"""``strangler route``: validate, change, inspect, roll back and export the router config.

Every change validates the whole new version first, records who, when and why, and goes
live by moving the store's ``current`` pointer; the router picks it up within a second.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from strangler.routing import edit
from strangler.routing.schema import ConfigError, RouterConfig, dump_config, load_config
from strangler.routing.store import RouteStore, StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    route = subparsers.add_parser(
        "route",
        help="change and inspect the router config (versioned, validated, reversible)",
        description=__doc__,
    )
    route.add_argument(
        "--dir",
        help="config store directory (default: $STRANGLER_ROUTER_DIR or var/router)",
    )
    verbs = route.add_subparsers(dest="route_verb", metavar="ACTION")

    p = verbs.add_parser("validate", help="check a config file; exit 1 when it is bad")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_validate)

    p = verbs.add_parser("apply", help="make a whole config file the next live version")
    p.add_argument("file")
    _change_args(p)
    p.set_defaults(handler=_apply)

    p = verbs.add_parser(
        "set", help='send a route to a backend: set "GET /api/votes/**" --to vote'
    )
    p.add_argument("route", help="route name or 'METHODS PATH' (created if new)")
    p.add_argument("--to", required=True, help="backend name")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fallback", help="backend for safe methods when --to fails")
    group.add_argument("--no-fallback", action="store_true", help="remove the fallback")
    _change_args(p)
    p.set_defaults(handler=_set)

    p = verbs.add_parser(
        "canary", help="send N %% of users (sticky) to another backend"
    )
    p.add_argument("route")
    p.add_argument("--to", help="canary backend")
    p.add_argument(
        "--percent", type=float, help="0-100; raising it only moves users forward"
    )
    p.add_argument("--key", help="user (JWT sub, default), header:NAME or cookie:NAME")
    p.add_argument("--off", action="store_true", help="remove the canary")
    _change_args(p)
    p.set_defaults(handler=_canary)

    p = verbs.add_parser(
        "shadow", help="also send requests to a backend and compare answers"
    )
    p.add_argument("route")
    p.add_argument("--to", help="shadow backend")
    p.add_argument("--percent", type=float, help="sample 0-100 (default 100)")
    p.add_argument("--off", action="store_true", help="stop shadowing")
    _change_args(p)
    p.set_defaults(handler=_shadow)

    p = verbs.add_parser("list", help="the live routes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)

    p = verbs.add_parser("history", help="every version: who, when, why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_history)

    p = verbs.add_parser("rollback", help="make an old version's content live again")
    p.add_argument(
        "--to", type=int, required=True, dest="target", help="version number"
    )
    _change_args(p)
    p.set_defaults(handler=_rollback)

    p = verbs.add_parser(
        "export-nginx", help="write an nginx config reproducing the routes"
    )
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    p.add_argument("--version", type=int, help="version to export (default: live)")
    p.add_argument(
        "--listen", default="8080", help="nginx listen address (default 8080)"
    )
    p.set_defaults(handler=_export_nginx)

    route.set_defaults(handler=lambda args: _usage(route))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _change_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--why", required=True, help="reason, kept in the history")
    p.add_argument("--who", help="actor (default: $STRANGLER_ACTOR or the login name)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and show the diff; change nothing",
    )


def _fail(message: str, code: int = 2):
    from strangler.cli import CommandError

    return CommandError(message, code)


def _store(args: argparse.Namespace) -> RouteStore:
    return RouteStore(args.dir) if args.dir else RouteStore()


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(
            f"{path}: cannot read ({exc.strerror}); fix: check the path"
        ) from None


def _validate(args: argparse.Namespace) -> int:
    text = _read_file(args.file)
    try:
        config = load_config(text, source=args.file)
    except ConfigError as exc:
        if args.json:
            problems = [p.__dict__ for p in exc.problems]
            print(json.dumps({"valid": False, "problems": problems}, indent=2))
        else:
            print(str(exc), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"valid": True, "routes": len(config.routes)}))
    else:
        print(
            f"{args.file}: valid ({len(config.backends)} backends, {len(config.routes)} routes)"
        )
    return 0


def _commit(
    args: argparse.Namespace,
    store: RouteStore,
    text: str,
    action: str,
    old_text: str,
    parent: int | None,
) -> int:
    try:
        load_config(text, source="(new version)")
    except ConfigError as exc:
        raise _fail(f"refused, nothing changed:\n{exc}", 1) from None
    diff = "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            text.splitlines(keepends=True),
            f"version {parent}",
            "new",
        )
    )
    if args.dry_run:
        print(diff or "(no change)")
        print("dry run: nothing written", file=sys.stderr)
        return 0
    try:
        version = store.commit(
            text, action=action, why=args.why, who=args.who, expect_parent=parent
        )
    except (StoreError, ConfigError) as exc:
        raise _fail(f"refused, nothing changed: {exc}", 1) from None
    print(f"version {version} is live ({action})")
    return 0


def _live(store: RouteStore) -> tuple[int, str, RouterConfig]:
    try:
        live = store.live()
    except StoreError as exc:
        raise _fail(str(exc)) from None
    except ConfigError as exc:
        raise _fail(f"the live version is invalid:\n{exc}") from None
    return live.version, live.text, live.config


def _apply(args: argparse.Namespace) -> int:
    store = _store(args)
    text = _read_file(args.file)
    try:
        load_config(text, source=args.file)
    except ConfigError as exc:
        raise _fail(f"refused, nothing changed:\n{exc}", 1) from None
    parent = store.current_version()
    old = store.read(parent) if parent else ""
    return _commit(args, store, text, f"apply {args.file}", old, parent)


def _edit(args: argparse.Namespace, action: str, fn, **kwargs: Any) -> int:
    store = _store(args)
    version, text, config = _live(store)
    try:
        raw = fn(config, args.route, **kwargs)
    except edit.EditError as exc:
        raise _fail(str(exc)) from None
    return _commit(args, store, dump_config(raw), action, text, version)


def _set(args: argparse.Namespace) -> int:
    action = f"set {args.route} -> {args.to}"
    return _edit(
        args,
        action,
        edit.set_backend,
        to=args.to,
        fallback=args.fallback,
        clear_fallback=args.no_fallback,
    )


def _canary(args: argparse.Namespace) -> int:
    if args.off:
        action = f"canary {args.route} off"
    else:
        action = f"canary {args.route} -> {args.to or '(same)'} {args.percent}%"
    return _edit(
        args,
        action,
        edit.set_canary,
        to=args.to,
        percent=args.percent,
        key=args.key,
        off=args.off,
    )


def _shadow(args: argparse.Namespace) -> int:
    action = f"shadow {args.route} {'off' if args.off else '-> ' + str(args.to)}"
    return _edit(
        args, action, edit.set_shadow, to=args.to, percent=args.percent, off=args.off
    )


def _rollback(args: argparse.Namespace) -> int:
    store = _store(args)
    version, text, _ = _live(store)
    try:
        target = store.read(args.target)
    except StoreError as exc:
        raise _fail(str(exc)) from None
    return _commit(args, store, target, f"rollback to {args.target}", text, version)


def route_rows(config: RouterConfig) -> list[dict[str, Any]]:
    rows = []
    for r in sorted(config.routes, key=lambda r: r.specificity, reverse=True):
        rows.append(
            {
                "name": r.name,
                "methods": sorted(r.methods),
                "path": r.path,
                "to": r.to,
                "canary": r.canary
                and {
                    "to": r.canary.to,
                    "percent": r.canary.percent,
                    "key": r.canary.key,
                },
                "shadow": r.shadow and {"to": r.shadow.to, "percent": r.shadow.percent},
                "fallback": r.fallback,
            }
        )
    return rows


def _list(args: argparse.Namespace) -> int:
    version, _, config = _live(_store(args))
    rows = route_rows(config)
    if args.json:
        print(json.dumps({"version": version, "routes": rows}, indent=2))
        return 0
    print(f"version {version}")
    for row in rows:
        extra = []
        if row["canary"]:
            c = row["canary"]
            extra.append(f"canary {c['to']} {c['percent']:g}% by {c['key']}")
        if row["shadow"]:
            extra.append(f"shadow {row['shadow']['to']} {row['shadow']['percent']:g}%")
        if row["fallback"]:
            extra.append(f"fallback {row['fallback']}")
        methods = ",".join(row["methods"])
        print(
            f"  {methods:<12} {row['path']:<32} -> {row['to']:<10} {'; '.join(extra)}  [{row['name']}]"
        )
    return 0


def _history(args: argparse.Namespace) -> int:
    store = _store(args)
    entries = store.history()
    current = store.current_version()
    if args.json:
        print(json.dumps({"current": current, "history": entries}, indent=2))
        return 0
    for e in entries:
        mark = "*" if e["version"] == current else " "
        print(
            f"{mark}{e['version']:>5}  {e['when']}  {e['who']:<12} {e['action']}: {e['why']}"
        )
    return 0


def _export_nginx(args: argparse.Namespace) -> int:
    from strangler.routing.nginx import export_nginx

    store = _store(args)
    if args.version is not None:
        try:
            text = store.read(args.version)
        except StoreError as exc:
            raise _fail(str(exc)) from None
        version = args.version
        config = load_config(text, source=str(store.version_path(version)))
    else:
        version, _, config = _live(store)
    output = export_nginx(config, version=version, listen=args.listen)
    if args.output:
        Path(args.output).write_text(output, encoding="utf-8")
        print(f"wrote {args.output} (version {version})", file=sys.stderr)
    else:
        sys.stdout.write(output)
    return 0
