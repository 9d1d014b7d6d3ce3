"""``strangler sync backfill|verify|reconcile|status|cutover-sequences SERVICE``.

Database URLs come from the environment variables the plan names (``databases.source`` and
``databases.target``), or from ``--source-url`` / ``--target-url``. Exit codes: 0 done and
clean, 1 a difference was found (verify), 2 bad input or failure (nothing changed).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strangler.cli import CommandError
from strangler.plans import Plan, PlanError, default_plan_path, load_plan
from strangler.sync.db import Database, SyncError, connect


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="copy, verify and repair the data a plan moves",
        description="Backfill, verify, reconcile and cut over the tables of a migration plan.",
    )
    actions = parser.add_subparsers(dest="sync_action", metavar="ACTION", required=True)

    p = _action(
        actions,
        "backfill",
        "copy each plan table from the monolith into the service (resumable)",
        _backfill,
    )
    p.add_argument(
        "--batch-size",
        type=_positive,
        default=10_000,
        help="rows per batch (default 10000)",
    )
    p.add_argument(
        "--rows-per-second", type=_positive, default=None, help="throughput ceiling"
    )
    p.add_argument(
        "--max-source-latency-ms",
        type=float,
        default=1000.0,
        help="pause while a source round trip takes longer (default 1000)",
    )
    p.add_argument(
        "--max-outbox-lag",
        type=float,
        default=30.0,
        help="pause while the forward outbox lags more seconds than this (default 30)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="resume even though the fingerprint changed",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="ignore the watermark and copy from the first key",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would be copied; write nothing",
    )

    p = _action(
        actions, "verify", "compare source and target; exit 1 when they differ", _verify
    )
    p.add_argument(
        "--chunk-size",
        type=_positive,
        default=20_000,
        help="keys per checksum chunk (default 20000)",
    )
    p.add_argument(
        "--report",
        type=Path,
        help="write the JSON report listing every difference here",
    )
    p.add_argument(
        "--rechecks",
        type=int,
        default=2,
        help="recheck rounds for suspect rows (default 2)",
    )
    p.add_argument(
        "--recheck-delay",
        type=float,
        default=2.0,
        help="seconds to wait before a recheck when no outbox can be watched (default 2)",
    )
    p.add_argument(
        "--recheck-timeout",
        type=float,
        default=60.0,
        help="longest wait for the outbox to drain past the verify start (default 60)",
    )

    p = _action(
        actions,
        "reconcile",
        "repair the target rows a verify report names (dry run unless --apply)",
        _reconcile,
    )
    p.add_argument(
        "--from", dest="report", type=Path, required=True, help="verify report (JSON)"
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="write the repairs (default: only print them)",
    )

    _action(
        actions,
        "status",
        "backfill progress, last verify and event lag per table",
        _status,
    )

    p = _action(
        actions,
        "cutover-sequences",
        "move service id sequences past the legacy ids",
        _sequences,
    )
    p.add_argument(
        "--gap",
        type=int,
        default=1000,
        help="ids kept free above the legacy maximum (default 1000)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="show the new values; change nothing"
    )


def _action(
    actions: argparse._SubParsersAction,
    name: str,
    text: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=text, description=text)
    parser.add_argument("service", metavar="SERVICE", help="plan name, e.g. vote")
    parser.add_argument(
        "--plan", type=Path, help="plan file (default migrations_plan/SERVICE.yaml)"
    )
    parser.add_argument(
        "--source-url",
        help="monolith database URL (default: the plan's source env var)",
    )
    parser.add_argument(
        "--target-url", help="service database URL (default: the plan's target env var)"
    )
    parser.add_argument(
        "--table",
        action="append",
        dest="tables",
        metavar="TABLE",
        help="only this table (repeatable)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON on stdout"
    )
    parser.set_defaults(handler=lambda args: _run(handler, args))
    return parser


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except (SyncError, PlanError) as exc:
        raise CommandError(str(exc), exit_code=2) from None


def _plan(args: argparse.Namespace) -> Plan:
    path = args.plan or default_plan_path(args.service)
    plan = load_plan(path)
    if plan.service != args.service:
        raise CommandError(
            f"{path}: service: the plan is for {plan.service!r}, not {args.service!r}",
            exit_code=2,
        )
    return plan


def _url(explicit: str | None, env_name: str, flag: str, plan: Plan, key: str) -> str:
    if explicit:
        return explicit
    value = os.environ.get(env_name)
    if not value:
        raise CommandError(
            f"{plan.path}: databases.{key} names {env_name}, which is not set;"
            f" fix: export {env_name}=postgres://… or pass {flag}"
        )
    return value


def _open(args: argparse.Namespace, plan: Plan) -> tuple[Database, Database]:
    source = connect(
        _url(args.source_url, plan.source_env, "--source-url", plan, "source"),
        readonly=True,
        label="source",
    )
    try:
        target = connect(
            _url(args.target_url, plan.target_env, "--target-url", plan, "target"),
            readonly=False,
            label="target",
        )
    except BaseException:
        source.close()
        raise
    return source, target


def _with_dbs(
    args: argparse.Namespace, work: Callable[[Plan, Database, Database], int]
) -> int:
    plan = _plan(args)
    source, target = _open(args, plan)
    try:
        return work(plan, source, target)
    finally:
        source.close()
        target.close()


def _emit(args: argparse.Namespace, result: dict[str, Any], human: str) -> None:
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(human)


def _backfill(args: argparse.Namespace) -> int:
    from strangler.sync.backfill import BackfillOptions, backfill

    if args.force and args.restart:
        raise CommandError(
            "--force and --restart contradict each other; pick one", exit_code=2
        )
    options = BackfillOptions(
        batch_size=args.batch_size,
        rows_per_second=args.rows_per_second,
        max_source_latency_ms=args.max_source_latency_ms,
        max_outbox_lag_seconds=args.max_outbox_lag,
        force=args.force,
        restart=args.restart,
        dry_run=args.dry_run,
        tables=args.tables,
    )

    def work(plan: Plan, source: Database, target: Database) -> int:
        result = backfill(plan, source, target, options)
        lines = []
        for t in result["tables"]:
            verb = "would copy" if args.dry_run else "copied"
            lines.append(
                f"{t['source']} -> {t['target']}: {verb} {t['rows_this_run']:,} rows this run,"
                f" {t['rows_copied']:,}/{t['rows_total']:,} in total"
                + (
                    f" ({t['rows_per_second']:,.0f} rows/s)"
                    if t["rows_per_second"]
                    else ""
                )
            )
            lines.extend(f"  {note}" for note in t["notes"])
        _emit(args, result, "\n".join(lines))
        return 0

    return _with_dbs(args, work)


def _verify(args: argparse.Namespace) -> int:
    from strangler.sync.verify import VerifyOptions, verify

    options = VerifyOptions(
        chunk_size=args.chunk_size,
        rechecks=max(0, args.rechecks),
        recheck_delay=args.recheck_delay,
        recheck_timeout=args.recheck_timeout,
        tables=args.tables,
    )

    def work(plan: Plan, source: Database, target: Database) -> int:
        result = verify(plan, source, target, options)
        if args.report:
            try:
                args.report.write_text(json.dumps(result, indent=2, default=str) + "\n")
            except OSError as exc:
                raise CommandError(
                    f"{args.report}: cannot write the report ({exc.strerror})",
                    exit_code=2,
                ) from None
        lines = []
        for t in result["tables"]:
            state = (
                "clean"
                if not t["differences"]
                else f"{len(t['differences'])} difference(s)"
            )
            lines.append(
                f"{t['source']} -> {t['target']}: {state}; {t['rows_source']:,} source rows,"
                f" {t['rows_target']:,} target rows, {t['resolved_in_flight']} in-flight resolved"
            )
            for d in t["differences"]:
                cols = ", ".join(
                    f"{name}: source {v['source']!r} target {v['target']!r}"
                    for name, v in d.get("columns", {}).items()
                )
                lines.append(
                    f"  {d['kind']} key={d['key']}" + (f" ({cols})" if cols else "")
                )
        lines.append(
            "verify: OK"
            if result["ok"]
            else f"verify: {result['differences_total']} difference(s)"
        )
        _emit(args, result, "\n".join(lines))
        return 0 if result["ok"] else 1

    return _with_dbs(args, work)


def _reconcile(args: argparse.Namespace) -> int:
    from strangler.sync.reconcile import describe, load_report, reconcile

    plan = _plan(args)
    wanted = load_report(args.report, plan)

    def work(plan: Plan, source: Database, target: Database) -> int:
        result = reconcile(plan, source, target, wanted, apply=args.apply)
        head = "applied" if args.apply else "dry run (pass --apply to write)"
        lines = [f"reconcile {plan.service}: {head}"]
        lines.extend(f"  {describe(a)}" for a in result["actions"])
        lines.append(
            f"{result['changes']} change(s)" + ("" if args.apply else " would be made")
        )
        _emit(args, result, "\n".join(lines))
        return 0

    return _with_dbs(args, work)


def _status(args: argparse.Namespace) -> int:
    from strangler.sync.status import render, status

    def work(plan: Plan, source: Database, target: Database) -> int:
        result = status(plan, source, target)
        _emit(args, result, render(result))
        return 0

    return _with_dbs(args, work)


def _sequences(args: argparse.Namespace) -> int:
    from strangler.sync.sequences import cutover_sequences

    def work(plan: Plan, source: Database, target: Database) -> int:
        result = cutover_sequences(
            plan, source, target, gap=args.gap, dry_run=args.dry_run
        )
        lines = []
        for t in result["tables"]:
            if "wanted_next" in t:
                lines.append(
                    f"{t['table']}: {t['action']} (legacy max {t.get('legacy_max')},"
                    f" next id {t.get('current_next', 'n/a')} -> {t['wanted_next']})"
                    + (f": {t['why']}" if t.get("why") else "")
                )
            else:
                lines.append(f"{t['table']}: {t['action']}: {t['why']}")
        _emit(args, result, "\n".join(lines))
        return 0

    return _with_dbs(args, work)
