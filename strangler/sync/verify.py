"""Verify: prove source and target agree, chunk by chunk of primary keys, down to the row.

Each column is rendered to text the same way on both sides (timestamps in UTC with
microseconds, numerics without trailing zeros), so equal data gives equal text whatever the
column types. On PostgreSQL each chunk is reduced inside the database to a row count and a sum
of 64-bit row hashes; only chunks whose summaries differ are fetched and compared row by row.
With SQLite on either side, chunks are fetched and compared in Python.

Lag-aware: a difference found in the first pass is only a suspect. Suspects are re-read after
the forward outbox has drained past the verify's start (or after ``recheck_delay`` seconds when
there is no outbox to watch), up to ``rechecks`` times; only rows that still differ are
reported, so writes in flight through the event path are not reported as drift.
"""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

from strangler.plans import Plan
from strangler.sync import state
from strangler.sync.db import Database, coerce_key, connect, is_integer_type, quote
from strangler.sync.lag import oldest_pending
from strangler.sync.progress import Progress
from strangler.sync.spec import SEQ, TableSpec, resolve

SEP = "\x1f"
MISSING, EXTRA, DIFFERENT, TOMBSTONED = "missing", "extra", "different", "tombstoned"


@dataclass
class VerifyOptions:
    chunk_size: int = 20_000
    rechecks: int = 2
    recheck_delay: float = 2.0
    recheck_timeout: float = 60.0
    tables: list[str] | None = None
    record: bool = True
    drained_past: Callable[[datetime], bool] | None = None


@dataclass
class TableReport:
    source: str
    target: str
    rows_source: int = 0
    rows_target: int = 0
    chunks: int = 0
    chunks_mismatched: int = 0
    suspects: int = 0
    resolved_in_flight: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def pg_render(column: str, sql_type: str) -> str:
    """SQL rendering ``column`` (of ``sql_type``) as canonical text, NULL-safe."""
    t = sql_type.lower()
    if (t.startswith("timestamp") and "with time zone" in t) or t == "timestamptz":
        expr = f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    elif t.startswith("timestamp"):
        expr = f"to_char({column}, 'YYYY-MM-DD HH24:MI:SS.US')"
    elif t == "date":
        expr = f"to_char({column}, 'YYYY-MM-DD')"
    elif t.startswith(("numeric", "decimal")):
        expr = f"trim_scale({column})::text"
    elif t == "boolean":
        expr = f"CASE WHEN {column} THEN 't' ELSE 'f' END"
    elif t in ("json", "jsonb"):
        expr = f"{column}::jsonb::text"
    else:
        expr = f"{column}::text"
    return f"coalesce('v' || {expr}, 'n')"


def py_render(value: Any, sql_type: str) -> str:
    """The same canonical text as ``pg_render``, computed in Python (SQLite paths)."""
    if value is None:
        return "n"
    t = sql_type.lower()
    if ("time" in t or t == "date") and isinstance(value, str):
        try:
            value = (
                datetime.fromisoformat(value)
                if "time" in t
                else date.fromisoformat(value)
            )
        except ValueError:
            return "v" + value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return "v" + value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return "v" + value.isoformat()
    if isinstance(value, bool) or (t in ("bool", "boolean") and value in (0, 1)):
        return "vt" if value else "vf"
    if isinstance(value, Decimal) or t.startswith(("numeric", "decimal")):
        text = format(Decimal(str(value)).normalize(), "f")
        return "v" + text
    return "v" + str(value)


class _Side:
    """SQL for one database: the rendered columns and range predicates for a table."""

    def __init__(self, db: Database, spec: TableSpec, is_source: bool) -> None:
        self.db, self.spec, self.is_source = db, spec, is_source
        if is_source:
            self.table = quote(spec.table.source)
            self.key = quote(spec.table.key)
            exprs = spec.source_select()
            types = spec.source_types
        else:
            self.table = quote(spec.table.target)
            self.key = quote(spec.target_key)
            exprs = [quote(c) for c in spec.target_columns]
            types = spec.target_types
        self.types = types
        self.raw = exprs
        self.rendered = [pg_render(e, t) for e, t in zip(exprs, types, strict=True)]

    def where(self, lo: Any, hi: Any) -> tuple[str, list[Any]]:
        parts, params = [], []
        cast = f"::{self.spec.key_type}" if self.db.is_pg else ""
        for value, op in ((lo, ">"), (hi, "<=")):
            if value is not None:
                parts.append(f"{self.key} {op} {self.db.ph}{cast}")
                params.append(
                    value if self.db.is_pg else coerce_key(value, self.spec.key_type)
                )
        return (" WHERE " + " AND ".join(parts)) if parts else "", params

    def summary(self, lo: Any, hi: Any) -> tuple[int, str]:
        where, params = self.where(lo, hi)
        row_text = f"concat_ws(E'\\x1f', {', '.join(self.rendered)})"
        row = self.db.fetchone(
            f"SELECT count(*), coalesce(sum(hashtextextended({row_text}, 0)), 0)::text"
            f" FROM {self.table}{where}",
            params,
        )
        self.db.end_read()
        return (int(row[0]), row[1]) if row else (0, "0")

    def rows(
        self, lo: Any, hi: Any, keys: list[str] | None = None
    ) -> dict[str, tuple[str, ...]]:
        """Key -> rendered columns (plus seq last on the target) for a range or key list."""
        extra = [] if self.is_source else [quote(SEQ)]
        if keys is not None:
            cast = f"::{self.spec.key_type}" if self.db.is_pg else ""
            marks = ", ".join(f"{self.db.ph}{cast}" for _ in keys)
            where = f" WHERE {self.key} IN ({marks})" if keys else " WHERE 1 = 0"
            params: list[Any] = [
                k if self.db.is_pg else coerce_key(k, self.spec.key_type) for k in keys
            ]
        else:
            where, params = self.where(lo, hi)
        if self.db.is_pg:
            cols = [*self.rendered, *extra]
            fetched = self.db.fetchall(
                f"SELECT {self.key}::text, {', '.join(cols)} FROM {self.table}{where}",
                params,
            )
            self.db.end_read()
            return {r[0]: tuple(str(v) for v in r[1:]) for r in fetched}
        fetched = self.db.fetchall(
            f"SELECT {self.key}, {', '.join([*self.raw, *extra])} FROM {self.table}{where}",
            params,
        )
        out = {}
        for r in fetched:
            rendered = [
                py_render(v, t) for v, t in zip(r[1:], self.types, strict=False)
            ]
            out[str(r[0])] = (*rendered, *(str(v) for v in r[1 + len(self.types) :]))
        return out

    def next_bound(self, lo: Any, size: int) -> Any:
        where, params = self.where(lo, None)
        row = self.db.fetchone(
            f"SELECT {self.key} FROM {self.table}{where} ORDER BY {self.key}"
            f" LIMIT 1 OFFSET {int(size) - 1}",
            params,
        )
        self.db.end_read()
        return None if row is None else str(row[0])

    def count(self) -> int:
        row = self.db.fetchone(f"SELECT count(*) FROM {self.table}")
        self.db.end_read()
        return int(row[0]) if row else 0


def verify(
    plan: Plan,
    source: Database,
    target: Database,
    options: VerifyOptions,
    *,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Compare every (selected) table; the report's ``ok`` is True only with no difference."""
    out = out if out is not None else sys.stderr
    started = state.now()
    specs = resolve(plan, source, target, options.tables)
    # A second pair of connections lets both sides summarise a chunk at the same time.
    source2 = (
        connect(source.url, readonly=True, label="source") if source.is_pg else source
    )
    target2 = (
        connect(target.url, readonly=False, label="target") if target.is_pg else target
    )
    try:
        reports = [
            _verify_table(spec, source2, target2, options, out) for spec in specs
        ]
        pending = [
            (spec, rep)
            for spec, rep in zip(specs, reports, strict=True)
            if rep.differences
        ]
        if pending:
            _recheck(pending, source2, target2, options, started, out)
    finally:
        for extra, main in ((source2, source), (target2, target)):
            if extra is not main:
                extra.close()
    finished = state.now()
    total = sum(len(r.differences) for r in reports)
    result = {
        "service": plan.service,
        "plan": plan.path,
        "ok": total == 0,
        "differences_total": total,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "tables": [vars(r) for r in reports],
    }
    if options.record:
        for r in reports:
            state.record_verify(
                target,
                service=plan.service,
                table=r.target,
                ok=not r.differences,
                differences=len(r.differences),
                rows_checked=r.rows_source,
                started_at=started,
                finished_at=finished,
                report=None,
            )
    return result


def _verify_table(
    spec: TableSpec,
    source: Database,
    target: Database,
    options: VerifyOptions,
    out: TextIO,
) -> TableReport:
    began = time.monotonic()
    src, tgt = _Side(source, spec, True), _Side(target, spec, False)
    report = TableReport(source=spec.table.source, target=spec.table.target)
    total = src.count()
    progress = Progress(
        f"verify {spec.plan.service}/{spec.table.target}", total, out=out
    )
    fast = source.is_pg and target.is_pg
    lo: Any = None
    checked = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        while True:
            hi = src.next_bound(lo, options.chunk_size)
            report.chunks += 1
            if fast:
                a = pool.submit(src.summary, lo, hi)
                b = pool.submit(tgt.summary, lo, hi)
                (n_src, h_src), (n_tgt, h_tgt) = a.result(), b.result()
                matched = (n_src, h_src) == (n_tgt, h_tgt)
            else:
                n_src = n_tgt = 0
                matched = False
            if not matched:
                if fast:
                    a2, b2 = (
                        pool.submit(src.rows, lo, hi),
                        pool.submit(tgt.rows, lo, hi),
                    )
                    s_rows, t_rows = a2.result(), b2.result()
                else:  # SQLite connections belong to the thread that opened them
                    s_rows, t_rows = src.rows(lo, hi), tgt.rows(lo, hi)
                n_src, n_tgt = len(s_rows), len(t_rows)
                found = _diff(spec, s_rows, t_rows)
                if found:
                    report.chunks_mismatched += 1
                    report.differences.extend(found)
            report.rows_source += n_src
            report.rows_target += n_tgt
            checked += n_src
            progress.update(checked)
            if hi is None:
                break
            lo = hi
    progress.update(checked, force=True)
    report.suspects = len(report.differences)
    report.seconds = round(time.monotonic() - began, 3)
    return report


def _diff(
    spec: TableSpec,
    s_rows: dict[str, tuple[str, ...]],
    t_rows: dict[str, tuple[str, ...]],
) -> list[dict[str, Any]]:
    names = spec.target_columns
    found: list[dict[str, Any]] = []
    for key in sorted(s_rows.keys() | t_rows.keys(), key=lambda k: _sort_key(k, spec)):
        s, t = s_rows.get(key), t_rows.get(key)
        if t is None and s is not None:
            found.append({"table": spec.table.target, "key": key, "kind": MISSING})
        elif s is None and t is not None:
            found.append({"table": spec.table.target, "key": key, "kind": EXTRA})
        elif s is not None and t is not None:
            columns = {
                names[i]: {"source": _value(s[i]), "target": _value(t[i])}
                for i in range(len(names))
                if s[i] != t[i]
            }
            if columns:
                found.append(
                    {
                        "table": spec.table.target,
                        "key": key,
                        "kind": DIFFERENT,
                        "columns": columns,
                        "target_seq": t[len(names)],
                    }
                )
    return found


def _value(rendered: str) -> str | None:
    return None if rendered == "n" else rendered[1:]


def _sort_key(key: str, spec: TableSpec) -> Any:
    return int(key) if is_integer_type(spec.key_type) else key


def _tombstoned(target: Database, spec: TableSpec, keys: list[str]) -> set[str]:
    if not spec.tombstone_sql or not keys:
        return set()
    dead = {str(r[0]) for r in target.fetchall(spec.tombstone_sql)}
    target.end_read()
    return dead & set(keys)


def _recheck(
    pending: list[tuple[TableSpec, TableReport]],
    source: Database,
    target: Database,
    options: VerifyOptions,
    started: datetime,
    out: TextIO,
) -> None:
    """Re-read suspects once the event path has caught up; keep only what still differs."""
    for round_no in range(1, options.rechecks + 1):
        if not any(rep.differences for _, rep in pending):
            break
        # Events older than this round, not only than the verify: a write made after the
        # verify started (a retraction, say) is in the source when the round re-reads it,
        # and must have reached the target by then too, or it is reported as drift.
        reason = _wait_for_lag(source, options, max(started, datetime.now(UTC)))
        count = sum(len(rep.differences) for _, rep in pending)
        out.write(
            f"verify: rechecking {count} suspect row(s), round {round_no} ({reason})\n"
        )
        out.flush()
        for spec, rep in pending:
            if not rep.differences:
                continue
            keys = [d["key"] for d in rep.differences]
            s_rows = _Side(source, spec, True).rows(None, None, keys)
            t_rows = _Side(target, spec, False).rows(None, None, keys)
            still = _diff(spec, s_rows, t_rows)
            rep.resolved_in_flight += len(rep.differences) - len(still)
            rep.differences = still
    for spec, rep in pending:
        dead = _tombstoned(
            target, spec, [d["key"] for d in rep.differences if d["kind"] == MISSING]
        )
        for d in rep.differences:
            if d["key"] in dead:
                d["kind"] = TOMBSTONED


def _wait_for_lag(source: Database, options: VerifyOptions, started: datetime) -> str:
    """Wait until events older than ``started`` (the recheck round's start) are published,
    else a fixed delay."""
    drained = options.drained_past or (lambda t: _outbox_drained_past(source, t))
    deadline = time.monotonic() + options.recheck_timeout
    first = drained(started)
    if first is None:
        time.sleep(options.recheck_delay)
        return f"no outbox to watch; waited {options.recheck_delay:g}s"
    while not first and time.monotonic() < deadline:
        time.sleep(0.5)
        first = drained(started)
    time.sleep(min(options.recheck_delay, 1.0))
    return "outbox drained past the round's start" if first else "outbox lag timeout"


def _outbox_drained_past(source: Database, started: datetime) -> bool | None:
    pending = oldest_pending(source)
    if pending == "n/a":
        return None
    if pending is None:
        return True
    # SQLite hands back the column's text ('2026-01-01 12:00:00.123456', UTC).
    pending = state.parse_ts(pending)
    return (pending if pending.tzinfo else pending.replace(tzinfo=UTC)) > started
