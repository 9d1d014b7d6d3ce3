"""``strangler plan status|advance|rollback|history``: move a migration plan through its stages.

Exit codes: 0 done (or ready), 1 refused (a gate failed, or another command holds the lock),
2 bad input (unknown service or stage, broken plan, nothing to do; nothing changed),
3 a transition is incomplete and needs ``advance`` or ``rollback``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from strangler.cli import CommandError

EXIT_CODES = (
    "exit codes: 0 ok, 1 refused (gate failed, lock busy), 2 bad input, 3 incomplete"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show, advance or roll back a service's migration stage",
        description="Move a migration plan through its stages, checking its gates. "
        + EXIT_CODES,
    )
    verbs = parser.add_subparsers(dest="plan_verb", metavar="ACTION", required=True)

    status = _verb(
        verbs, "status", "current stage, next stage's gates, what advance changes"
    )
    status.add_argument(
        "service", nargs="?", metavar="SERVICE", help="plan name; all if omitted"
    )
    status.set_defaults(handler=_status)

    advance = _verb(
        verbs, "advance", "check the next stage's gates and apply its actions"
    )
    advance.add_argument("service", metavar="SERVICE")
    advance.add_argument(
        "--to", metavar="STAGE", help="advance stage by stage up to STAGE"
    )
    _change_args(advance)
    advance.set_defaults(handler=_advance)

    rollback = _verb(verbs, "rollback", "return to the previous stage")
    rollback.add_argument("service", metavar="SERVICE")
    _change_args(rollback)
    rollback.set_defaults(handler=_rollback)

    history = _verb(verbs, "history", "every transition, refusal and interruption")
    history.add_argument("service", nargs="?", metavar="SERVICE")
    history.add_argument("--limit", type=int, default=0, help="only the last N entries")
    history.set_defaults(handler=_history)


def _verb(
    verbs: argparse._SubParsersAction, name: str, text: str
) -> argparse.ArgumentParser:
    parser = verbs.add_parser(name, help=text, description=f"{text}. {EXIT_CODES}")
    parser.add_argument(
        "--plan",
        type=Path,
        help="plan file (default: $STRANGLER_PLAN_DIR or migrations_plan/, SERVICE.yaml)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _change_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="check and show; change nothing"
    )
    parser.add_argument("--reason", default="", help="why, kept in the history")
    parser.add_argument("--actor", help="who, kept in the history (default $USER)")


def plan_dir() -> Path:
    from strangler.conf import REPO_ROOT

    return Path(os.environ.get("STRANGLER_PLAN_DIR") or REPO_ROOT / "migrations_plan")


def _load(service: str, path: Path | None):
    from strangler.plans import PlanError, load_plan

    path = path or plan_dir() / f"{service}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in plan_dir().glob("*.yaml"))
        raise CommandError(
            f"unknown service {service!r}: no plan file {path} "
            f"(plans: {', '.join(known) or 'none'})"
        )
    try:
        plan = load_plan(path)
    except PlanError as exc:
        raise CommandError(f"broken plan:\n{exc}") from None
    if plan.service != service:
        raise CommandError(
            f"{path}: service: the plan is for {plan.service!r}, not {service!r}"
        )
    return plan


def _engine(service: str, path: Path | None):
    from strangler.plan.engine import Engine
    from strangler.plan.resources import Resources
    from strangler.plan.store import StoreError, open_store

    plan = _load(service, path)
    try:
        store = open_store()
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    return Engine(plan, store, Resources(plan))


def _run(args: argparse.Namespace, work) -> int:
    from strangler.plan.engine import Exit, PlanCommandError
    from strangler.plan.store import Busy, StoreError

    engine = _engine(args.service, args.plan)
    try:
        with engine.store.lock(args.service):
            outcome = work(engine)
    except Busy as exc:
        raise CommandError(str(exc), Exit.REFUSED) from None
    except PlanCommandError as exc:
        raise CommandError(str(exc), exc.exit_code) from None
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    finally:
        engine.resources.close()
        engine.store.close()
    _print(args, outcome.data)
    return outcome.code


def _actor(args: argparse.Namespace) -> str:
    from strangler.plan.engine import default_actor

    return args.actor or default_actor()


def _advance(args: argparse.Namespace) -> int:
    return _run(
        args,
        lambda e: e.advance(
            to=args.to, dry_run=args.dry_run, actor=_actor(args), reason=args.reason
        ),
    )


def _rollback(args: argparse.Namespace) -> int:
    return _run(
        args,
        lambda e: e.rollback(
            dry_run=args.dry_run, actor=_actor(args), reason=args.reason
        ),
    )


def _status(args: argparse.Namespace) -> int:
    if args.service:
        from strangler.plan.engine import PlanCommandError

        engine = _engine(args.service, args.plan)
        try:
            outcome = engine.status()
        except PlanCommandError as exc:
            raise CommandError(str(exc), exc.exit_code) from None
        finally:
            engine.resources.close()
            engine.store.close()
        _print(args, outcome.data)
        return outcome.code
    from strangler.plan.store import StoreError, open_store

    try:
        store = open_store()
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    plans, code = [], 0
    try:
        for path in sorted(plan_dir().glob("*.yaml")):
            plan = _load(path.stem, path)
            state = store.load(plan.service)
            names = [s.name for s in plan.stages]
            index = names.index(state.stage) if state.stage in names else -1
            plans.append(
                {
                    "service": plan.service,
                    "stage": state.stage,
                    "next_stage": names[index + 1]
                    if 0 <= index < len(names) - 1
                    else None,
                    "pending": state.pending.to_dict() if state.pending else None,
                }
            )
            if state.pending:
                code = 3
    finally:
        store.close()
    _print(args, {"plans": plans})
    return code


def _history(args: argparse.Namespace) -> int:
    from strangler.plan.store import StoreError, open_store

    if args.service:
        _load(args.service, args.plan)
    try:
        store = open_store()
        entries = store.history(args.service)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    store.close()
    if args.limit > 0:
        entries = entries[-args.limit :]
    _print(args, {"history": entries})
    return 0


# --- output --------------------------------------------------------------------------------


def _print(args: argparse.Namespace, data: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return
    print(render(args.plan_verb, data))


def _gate_line(g: dict[str, Any]) -> str:
    mark = "pass" if g["passed"] else "FAIL"
    value = "n/a" if g["value"] is None else g["value"]
    detail = f" — {g['detail']}" if g.get("detail") else ""
    return f"  [{mark}] {g['name']}: {value} (threshold {g['threshold']}){detail}"


def _pending_lines(p: dict[str, Any]) -> list[str]:
    lines = [
        f"INCOMPLETE {p['kind']} {p['from_stage']} → {p['to_stage']} "
        f"(started {p['started_at']} by {p['actor']})"
    ]
    for a in p["actions"]:
        lines.append(f"  [{'done' if a['done'] else 'todo'}] {a['description']}")
    if p.get("explanation"):
        lines.append(p["explanation"])
    return lines


def render(verb: str, data: dict[str, Any]) -> str:
    """Human-readable text for one verb's result."""
    lines: list[str] = []
    if verb == "history":
        for e in data["history"]:
            lines.append(
                f"{e['when']} {e['service']} {e['kind']} {e['from']} → {e['to']}: "
                f"{e['outcome']} (by {e['who']}{'; ' + e['reason'] if e.get('reason') else ''})"
            )
            lines.extend(_gate_line(g) for g in e.get("gates", []) if not g["passed"])
        return "\n".join(lines) or "no transitions yet"
    if "plans" in data:
        for p in data["plans"]:
            tail = " — INCOMPLETE transition, see `plan status`" if p["pending"] else ""
            lines.append(
                f"{p['service']}: {p['stage']} (next: {p['next_stage'] or '—'}){tail}"
            )
        return "\n".join(lines) or "no plans"
    if verb == "status":
        lines.append(
            f"{data['service']}: stage {data['stage']} ({' → '.join(data['stages'])})"
        )
        if data["pending"]:
            lines.extend(_pending_lines(data["pending"]))
        elif data["next_stage"] is None:
            lines.append("at the last stage")
        else:
            ready = "ready" if data.get("ready") else "not ready"
            lines.append(f"next: {data['next_stage']} ({ready})")
            lines.extend(_gate_line(g) for g in data["gates"])
            lines.append("advance would:")
            lines.extend(f"  - {c}" for c in data["changes"])
        return "\n".join(lines)
    if "error" in data:
        lines.append(f"ERROR: {data['error']}")
        lines.append(f"fix: {data['fix']}")
        return "\n".join(lines)
    steps = data.get("steps") or [data]
    for step in steps:
        head = f"{step.get('from')} → {step.get('to')}"
        if step.get("resume"):
            head += " (finishing an interrupted transition)"
        lines.append(head)
        lines.extend(_gate_line(g) for g in step.get("gates", []))
        refused = any(not g["passed"] for g in step.get("gates", []))
        verb_text = "would" if data.get("dry_run") or refused else "did"
        lines.extend(f"  {verb_text}: {c}" for c in step.get("changes", []))
    if data.get("failing"):
        lines.append(
            "REFUSED; failing: " + ", ".join(g["name"] for g in data["failing"])
        )
    elif data.get("dry_run"):
        lines.append("dry run: nothing changed")
    elif data.get("ok"):
        lines.append(f"done: {data.get('stage') or data.get('to')}")
    return "\n".join(lines)


if __name__ == "__main__":
    from strangler.cli import main

    sys.exit(main(["plan", *sys.argv[1:]]))
