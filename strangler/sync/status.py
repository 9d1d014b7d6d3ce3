"""Status: per table backfill progress and last verify, plus event lag in both directions."""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

from typing import Any

from strangler.plans import Plan
from strangler.sync import state
from strangler.sync.db import Database, coerce_key, quote
from strangler.sync.lag import outbox_lag_seconds


def status(plan: Plan, source: Database, target: Database) -> dict[str, Any]:
    """A JSON-able snapshot; missing state shows as None (rendered "n/a")."""
    now = state.now()
    tables = []
    for table in plan.tables:
        mark = state.read_watermark(target, plan.service, table.target)
        exists = source.table_exists(table.source)
        remaining = total = None
        if exists:
            key_type = source.columns(table.source).get(table.key, "")
            where, params = "", ()
            if mark is not None and mark.last_key is not None:
                cast = f"::{key_type}" if source.is_pg else ""
                where = f" WHERE {quote(table.key)} > {source.ph}{cast}"
                params = (
                    mark.last_key
                    if source.is_pg
                    else coerce_key(mark.last_key, key_type),
                )
            row = source.fetchone(
                f"SELECT count(*) FROM {quote(table.source)}{where}", params
            )
            source.end_read()
            remaining = int(row[0]) if row else 0
            total = (mark.rows_copied if mark else 0) + remaining
        verify = state.last_verify(target, plan.service, table.target)
        tables.append(
            {
                "source": table.source,
                "target": table.target,
                "backfill": {
                    "rows_copied": mark.rows_copied if mark else 0,
                    "rows_total": total,
                    "rows_remaining": remaining,
                    "last_key": mark.last_key if mark else None,
                    # Rows past the watermark after the copy reached the end are the
                    # event stream's (dual-write was on before the backfill); verify
                    # checks them. Requiring none would never pass under live writes.
                    "completed": bool(mark and mark.completed_at),
                    "updated_at": _iso(mark.updated_at if mark else None),
                },
                "verify": None
                if verify is None
                else {
                    "ok": verify["ok"],
                    "differences": verify["differences"],
                    "finished_at": _iso(verify["finished_at"]),
                    "age_seconds": round(
                        (now - verify["finished_at"]).total_seconds(), 1
                    ),
                },
            }
        )
    return {
        "service": plan.service,
        "plan": plan.path,
        "tables": tables,
        "lag_seconds": {
            "forward": outbox_lag_seconds(source),
            "reverse": outbox_lag_seconds(target),
        },
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def render(result: dict[str, Any]) -> str:
    """The status as lines for a terminal."""
    lines = [f"service {result['service']} ({result['plan']})"]
    for t in result["tables"]:
        b = t["backfill"]
        total = b["rows_total"]
        pct = f"{100 * b['rows_copied'] / total:.1f}%" if total else "n/a"
        state_text = (
            "complete"
            if b["completed"]
            else "in progress"
            if b["rows_copied"]
            else "not started"
        )
        lines.append(
            f"  {t['source']} -> {t['target']}: backfill {state_text},"
            f" {b['rows_copied']:,}/{'n/a' if total is None else format(total, ',')} rows ({pct})"
        )
        v = t["verify"]
        if v is None:
            lines.append("    verify: never run")
        else:
            result_text = "clean" if v["ok"] else f"{v['differences']} difference(s)"
            lines.append(f"    verify: {result_text}, {v['age_seconds']:.0f}s ago")
    lag = result["lag_seconds"]

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}s"

    lines.append(
        f"  event lag: forward {show(lag['forward'])}, reverse {show(lag['reverse'])}"
    )
    return "\n".join(lines)
