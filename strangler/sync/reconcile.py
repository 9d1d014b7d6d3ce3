"""Reconcile: repair the target from the source for exactly the rows a verify report names.

Each row is re-read on both sides first, so a row that is already in sync is left alone and
running the same report twice is harmless. Updates keep the row's ``seq``; inserts get 0.
Rows tombstoned in the target are never resurrected: they are listed as skipped.
"""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from psycopg2.extras import execute_values

from strangler.plans import Plan
from strangler.sync.db import Database, SyncError, coerce_key, quote, to_sqlite
from strangler.sync.spec import SEQ, TableSpec, resolve
from strangler.sync.verify import _Side, _tombstoned


def load_report(path: str | Path, plan: Plan) -> dict[str, list[str]]:
    """Target table -> keys named by the report; SyncError names the file and the fix."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except OSError as exc:
        raise SyncError(
            f"{path}: cannot read the verify report ({exc.strerror}); fix: pass the file"
            f" written by `strangler sync verify {plan.service} --report FILE`"
        ) from None
    except json.JSONDecodeError as exc:
        raise SyncError(
            f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})"
        ) from None
    if not isinstance(report, dict) or not isinstance(report.get("tables"), list):
        raise SyncError(f"{path}: not a verify report (no `tables` list)")
    if report.get("service") != plan.service:
        raise SyncError(
            f"{path}: service: the report is for {report.get('service')!r}, not"
            f" {plan.service!r}; fix: reconcile with the matching service"
        )
    wanted: dict[str, list[str]] = {}
    for ti, table in enumerate(report["tables"]):
        name = table.get("target") if isinstance(table, dict) else None
        try:
            plan.table(str(name))
        except KeyError:
            raise SyncError(
                f"{path}: tables[{ti}].target: {name!r} is not a table of plan"
                f" {plan.service!r}; fix: use a report from this plan"
            ) from None
        keys = []
        for di, diff in enumerate(table.get("differences") or []):
            if not isinstance(diff, dict) or "key" not in diff:
                raise SyncError(f"{path}: tables[{ti}].differences[{di}]: has no `key`")
            keys.append(str(diff["key"]))
        if keys:
            wanted.setdefault(name, []).extend(keys)
    return wanted


def reconcile(
    plan: Plan,
    source: Database,
    target: Database,
    wanted: dict[str, list[str]],
    *,
    apply: bool,
) -> dict[str, Any]:
    """Plan (and with ``apply`` perform, in one transaction) the repair of each named row."""
    specs = {
        s.table.target: s for s in resolve(plan, source, target, list(wanted) or None)
    }
    actions: list[dict[str, Any]] = []
    for table, keys in wanted.items():
        actions.extend(_plan_table(specs[table], source, target, sorted(set(keys))))
    if apply:
        try:
            for action in actions:
                _apply(specs[action["table"]], source, target, action)
            target.commit()
        except Exception as exc:
            target.rollback()
            raise SyncError(f"reconcile failed, nothing was changed: {exc}") from None
    changes = [a for a in actions if a["action"] in ("insert", "update", "delete")]
    return {
        "service": plan.service,
        "applied": apply,
        "ok": True,
        "changes": len(changes),
        "actions": actions,
    }


def _plan_table(
    spec: TableSpec, source: Database, target: Database, keys: list[str]
) -> list[dict[str, Any]]:
    s_rows = _Side(source, spec, True).rows(None, None, keys)
    t_rows = _Side(target, spec, False).rows(None, None, keys)
    dead = _tombstoned(target, spec, keys)
    names = spec.target_columns
    actions = []
    for key in keys:
        s, t = s_rows.get(key), t_rows.get(key)
        base = {"table": spec.table.target, "key": key}
        if s is None and t is None:
            actions.append({**base, "action": "none", "why": "absent on both sides"})
        elif s is None:
            actions.append({**base, "action": "delete", "why": "not in the source"})
        elif t is None and key in dead:
            actions.append(
                {
                    **base,
                    "action": "skip",
                    "why": "tombstoned in the target (deleted by an event)",
                }
            )
        elif t is None:
            actions.append({**base, "action": "insert", "why": "missing in the target"})
        else:
            changed = {
                names[i]: {"from": _v(t[i]), "to": _v(s[i])}
                for i in range(len(names))
                if s[i] != t[i]
            }
            if changed:
                actions.append({**base, "action": "update", "columns": changed})
            else:
                actions.append({**base, "action": "none", "why": "already in sync"})
    return actions


def _v(rendered: str) -> str | None:
    return None if rendered == "n" else rendered[1:]


def _apply(
    spec: TableSpec, source: Database, target: Database, action: dict[str, Any]
) -> None:
    kind = action["action"]
    if kind not in ("insert", "update", "delete"):
        return
    table, key_col = quote(spec.table.target), quote(spec.target_key)
    key = coerce_key(action["key"], spec.key_type)
    p = target.ph
    if kind == "delete":
        target.execute(f"DELETE FROM {table} WHERE {key_col} = {p}", (key,))
        return
    row = source.fetchone(
        f"SELECT {', '.join(spec.source_select())} FROM {quote(spec.table.source)}"
        f" WHERE {quote(spec.table.key)} = {source.ph}",
        (key,),
    )
    source.end_read()
    if row is None:
        raise SyncError(
            f"{spec.table.source} key {action['key']} vanished from the source"
        )
    values = list(row) if target.is_pg else [to_sqlite(v) for v in row]
    cols = [quote(c) for c in spec.target_columns]
    if kind == "insert":
        if target.is_pg:
            cur = target.conn.cursor()
            execute_values(
                cur,
                f"INSERT INTO {table} ({', '.join(cols)}, {quote(SEQ)}) VALUES %s",
                [(*values, 0)],
            )
            cur.close()
        else:
            marks = ", ".join("?" for _ in cols)
            target.execute(
                f"INSERT INTO {table} ({', '.join(cols)}, {quote(SEQ)}) VALUES ({marks}, 0)",
                values,
            )
        return
    sets = ", ".join(f"{c} = {p}" for c in cols)
    target.execute(f"UPDATE {table} SET {sets} WHERE {key_col} = {p}", [*values, key])


def describe(action: dict[str, Any]) -> str:
    """One line an operator can read for a planned or applied action."""
    head = f"{action['action'].upper():6} {action['table']} key={action['key']}"
    if action["action"] == "update":
        cols = ", ".join(
            f"{name}: {v['from']!r} -> {v['to']!r}"
            for name, v in action["columns"].items()
        )
        return f"{head}: {cols}"
    return f"{head}: {action.get('why', '')}"
