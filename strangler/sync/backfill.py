"""Backfill: copy each plan table from the source into the target by primary-key ranges.

Per batch: read the next ``batch_size`` rows after the watermark from the source (a read-only
transaction of its own, so no snapshot is held for hours), merge them into the target with an
upsert that only touches rows the event stream has not versioned (``seq = 0``) and skips
tombstoned keys, and move the watermark in the same target transaction. A crash therefore
loses at most the batch in flight, and a resume continues from the committed watermark.

PostgreSQL to PostgreSQL uses COPY out of the source into a TEMP staging table on the target,
then one ``INSERT … SELECT … ON CONFLICT`` per batch; a reader thread fetches the next batch
while the current one is merged. Any pair involving SQLite uses plain DB-API batches.
"""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

import contextlib
import io
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from queue import Empty, Full, Queue
from typing import Any, TextIO

import psycopg2.errors
from psycopg2.extras import execute_values

from strangler.plans import Plan
from strangler.sync import state
from strangler.sync.db import (
    Database,
    SyncError,
    coerce_key,
    connect,
    is_integer_type,
    quote,
    to_sqlite,
)
from strangler.sync.lag import outbox_lag_seconds
from strangler.sync.progress import Progress
from strangler.sync.spec import SEQ, TableSpec, resolve
from strangler.sync.throttle import Probe, Throttle, latency_probe

LOCK_WAIT_SECONDS = 30.0


@dataclass
class BackfillOptions:
    batch_size: int = 10_000
    rows_per_second: float | None = None
    max_source_latency_ms: float = 1000.0
    max_outbox_lag_seconds: float = 30.0
    lag_probe: Callable[[], float | None] | None = None
    force: bool = False
    restart: bool = False
    dry_run: bool = False
    tables: list[str] | None = None


@dataclass
class TableResult:
    source: str
    target: str
    resumed_from: str | None
    rows_total: int
    rows_copied: int
    rows_this_run: int = 0
    rows_written: int = 0
    rows_skipped: int = 0
    batches: int = 0
    seconds: float = 0.0
    rows_per_second: float = 0.0
    completed: bool = False
    fingerprint: str = ""
    notes: list[str] = field(default_factory=list)


def backfill(
    plan: Plan,
    source: Database,
    target: Database,
    options: BackfillOptions,
    *,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Backfill every (selected) table of ``plan``; returns the JSON-able result."""
    out = out if out is not None else sys.stderr
    specs = resolve(plan, source, target, options.tables)
    probe_db = (
        None
        if options.dry_run
        else connect(source.url, readonly=True, label="source probe")
    )
    try:
        if not options.dry_run:
            state.ensure_tables(target)
        results = [
            _backfill_table(spec, source, target, options, probe_db, out)
            for spec in specs
        ]
    finally:
        if probe_db is not None:
            probe_db.close()
    return {
        "service": plan.service,
        "plan": plan.path,
        "dry_run": options.dry_run,
        "ok": True,
        "tables": [asdict(r) for r in results],
    }


def explain_fingerprint(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Why two fingerprints differ, in words an operator can act on."""
    reasons = []
    if old.get("plan_version") != new.get("plan_version"):
        reasons.append(
            f"plan version changed from {old.get('plan_version')} to {new.get('plan_version')}"
        )
    if old.get("columns") != new.get("columns"):

        def show(cols: Any) -> str:
            return ", ".join(f"{c[0]}→{c[1]} {c[2]}" for c in cols or [])

        reasons.append(
            f"column list or types changed (was: {show(old.get('columns'))}; "
            f"now: {show(new.get('columns'))})"
        )
    for key, what in (
        ("key", "key column"),
        ("source", "source table"),
        ("target", "target table"),
    ):
        if old.get(key) != new.get(key):
            reasons.append(f"{what} changed from {old.get(key)!r} to {new.get(key)!r}")
    if old.get("tool_version") != new.get("tool_version"):
        reasons.append(
            f"strangler version changed from {old.get('tool_version')} to {new.get('tool_version')}"
        )
    return "; ".join(reasons) or "fingerprint changed"


def _backfill_table(
    spec: TableSpec,
    source: Database,
    target: Database,
    options: BackfillOptions,
    probe_db: Database | None,
    out: TextIO,
) -> TableResult:
    service, table = spec.plan.service, spec.table.target
    fingerprint, detail = spec.fingerprint(), spec.fingerprint_detail()
    mark = state.read_watermark(target, service, table)
    notes: list[str] = []
    if mark is not None and mark.fingerprint != fingerprint and not options.restart:
        why = explain_fingerprint(mark.fingerprint_detail, detail)
        if not options.force:
            raise SyncError(
                f"refusing to resume {table}: the watermark at key {mark.last_key} was written"
                f" under a different fingerprint: {why}. Rows already copied may not match the"
                " new layout; fix: re-run with --restart to copy the table again from the"
                " start, or --force to continue from the watermark anyway"
            )
        notes.append(f"fingerprint changed ({why}); continuing because of --force")
    start_key = None if (mark is None or options.restart) else mark.last_key
    done = 0 if (mark is None or options.restart) else mark.rows_copied
    remaining = _count_after(source, spec, start_key)
    result = TableResult(
        source=spec.table.source,
        target=table,
        resumed_from=start_key,
        rows_total=done + remaining,
        rows_copied=done,
        fingerprint=fingerprint,
        notes=notes,
    )
    label = f"backfill {service}/{table}"
    if options.dry_run:
        result.notes.append(
            f"would copy {remaining:,} rows after key {start_key} in about "
            f"{-(-remaining // options.batch_size)} batches of {options.batch_size:,}"
        )
        return result
    progress = Progress(label, result.rows_total, done=done, out=out)
    for note in notes:
        progress.note(note)
    if target.is_pg:
        fks = _foreign_keys(target, table)
        if fks:
            progress.note(
                f"target has foreign keys ({', '.join(fks)}): ANALYZE their parent tables once"
                " filled, or inserts may fall back to sequential-scan FK checks"
            )
    with _lock(target, service, table):
        if mark is None or options.restart:
            state.reset_watermark(target, service, table, fingerprint, detail)
        elif mark.fingerprint != fingerprint:
            state.accept_fingerprint(target, service, table, fingerprint, detail)
        throttle = Throttle(
            rows_per_second=options.rows_per_second,
            probes=_probes(options, probe_db),
            note=progress.note,
        )
        batch_size = options.batch_size
        if options.rows_per_second:
            batch_size = max(1, min(batch_size, int(options.rows_per_second)))
        started = time.monotonic()
        merge = (
            _PgMerge(spec, target)
            if (source.is_pg and target.is_pg)
            else _GenericMerge(spec, target)
        )
        reader = _reader(spec, source, start_key, batch_size)
        try:
            for batch in reader:
                written = merge.write(batch)
                state.advance_watermark(
                    target, service, table, batch.last_key, batch.rows
                )
                target.commit()
                result.batches += 1
                result.rows_this_run += batch.rows
                result.rows_written += written
                result.rows_skipped += batch.rows - written
                result.rows_copied += batch.rows
                progress.update(result.rows_copied)
                throttle.wait(result.rows_this_run)
        except BaseException:
            target.rollback()
            raise
        finally:
            reader.close()
        state.complete_watermark(target, service, table)
        result.completed = True
        result.seconds = round(time.monotonic() - started, 3)
        if result.seconds > 0:
            result.rows_per_second = round(result.rows_this_run / result.seconds, 1)
        if target.is_pg and result.rows_written:
            target.execute(f"ANALYZE {quote(table)}")
            target.commit()
        progress.update(result.rows_copied, force=True)
    return result


def _count_after(source: Database, spec: TableSpec, key: str | None) -> int:
    where, params = _after(source, spec, key)
    row = source.fetchone(
        f"SELECT count(*) FROM {quote(spec.table.source)}{where}", params
    )
    source.end_read()
    return int(row[0]) if row else 0


def _after(
    db: Database, spec: TableSpec, key: str | None
) -> tuple[str, tuple[Any, ...]]:
    if key is None:
        return "", ()
    column = quote(spec.table.key)
    if db.is_pg:
        return f" WHERE {column} > %s::{spec.key_type}", (key,)
    return f" WHERE {column} > ?", (coerce_key(key, spec.key_type),)


def _foreign_keys(target: Database, table: str) -> list[str]:
    rows = target.fetchall(
        "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = to_regclass(%s)",
        (quote(table),),
    )
    target.end_read()
    return [r[0] for r in rows]


def _probes(options: BackfillOptions, probe_db: Database | None) -> list[Probe]:
    if probe_db is None:
        return []
    lag = options.lag_probe or (lambda: outbox_lag_seconds(probe_db))
    return [
        Probe(
            "source latency",
            latency_probe(probe_db),
            options.max_source_latency_ms,
            " ms",
        ),
        Probe("outbox lag", lag, options.max_outbox_lag_seconds, " s"),
    ]


class _lock:
    """A session advisory lock per service table, so two backfills never interleave."""

    def __init__(self, target: Database, service: str, table: str) -> None:
        self.target, self.name = target, f"strangler-sync:{service}:{table}"

    def __enter__(self) -> None:
        if not self.target.is_pg:
            return
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            row = self.target.fetchone(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (self.name,)
            )
            self.target.commit()
            if row and row[0]:
                return
            if time.monotonic() > deadline:
                raise SyncError(
                    f"another backfill holds {self.name}; fix: wait for it to finish or stop it"
                )
            time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        if self.target.is_pg:
            try:
                self.target.rollback()
                self.target.fetchone(
                    "SELECT pg_advisory_unlock(hashtext(%s))", (self.name,)
                )
                self.target.commit()
            except Exception:  # noqa: S110 - the connection may already be gone
                pass


@dataclass
class _Batch:
    rows: int
    last_key: str
    first_key: str = ""
    copy_data: bytes | None = None
    values: list[tuple[Any, ...]] | None = None


class _reader:
    """Yields batches after ``start_key``; on PostgreSQL a thread reads one batch ahead."""

    def __init__(
        self, spec: TableSpec, source: Database, start_key: str | None, size: int
    ) -> None:
        self.spec, self.source, self.key, self.size = spec, source, start_key, size
        self.stop = threading.Event()
        self.queue: Queue[Any] = Queue(maxsize=1)
        self.thread: threading.Thread | None = None
        if source.is_pg:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def __iter__(self) -> Iterator[_Batch]:
        if self.thread is None:
            while (batch := self._fetch()) is not None:
                yield batch
            return
        while True:
            item = self.queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                return
            yield item

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            with contextlib.suppress(Empty):
                self.queue.get_nowait()
            self.thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = self._fetch()
                self._put(batch)
                if batch is None:
                    return
        except BaseException as exc:
            self.source.rollback()
            self._put(SyncError(f"reading {self.spec.table.source} failed: {exc}"))

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except Full:
                continue

    def _fetch(self) -> _Batch | None:
        spec, source = self.spec, self.source
        where, params = _after(source, spec, self.key)
        select = (
            f"SELECT {', '.join(spec.source_select())} FROM {quote(spec.table.source)}{where}"
            f" ORDER BY {quote(spec.table.key)} LIMIT {int(self.size)}"
        )
        if source.is_pg:
            cur = source.conn.cursor()
            try:
                sql = cur.mogrify(f"COPY ({select}) TO STDOUT", params).decode()
                buffer = io.BytesIO()
                cur.copy_expert(sql, buffer)
            finally:
                cur.close()
            source.commit()
            data = buffer.getvalue()
            rows = data.count(b"\n")
            if rows == 0:
                return None
            start = data.rfind(b"\n", 0, len(data) - 1) + 1
            last_row = data[start:-1].split(b"\t")
            first_row = data[: data.find(b"\n")].split(b"\t")
            self.key = _unescape(last_row[spec.key_index])
            first = _unescape(first_row[spec.key_index])
            return _Batch(rows=rows, last_key=self.key, first_key=first, copy_data=data)
        values = source.fetchall(select, params)
        source.end_read()
        if not values:
            return None
        self.key = str(values[-1][spec.key_index])
        return _Batch(rows=len(values), last_key=self.key, values=values)


def _unescape(field_bytes: bytes) -> str:
    """One field of COPY text format back to its text value."""
    text = field_bytes.decode()
    if "\\" not in text:
        return text
    mapping = {
        "t": "\t",
        "n": "\n",
        "r": "\r",
        "b": "\b",
        "f": "\f",
        "v": "\v",
        "\\": "\\",
    }
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(mapping.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _upsert_tail(spec: TableSpec, alias: str, excluded: str, distinct: str) -> str:
    key = quote(spec.target_key)
    others = [quote(c) for c in spec.target_columns if c != spec.target_key]
    if not others:
        return f" ON CONFLICT ({key}) DO NOTHING"
    sets = ", ".join(f"{c} = {excluded}.{c}" for c in others)
    if distinct == "row":
        changed = (
            f"({', '.join(f'{alias}.{c}' for c in others)}) IS DISTINCT FROM "
            f"({', '.join(f'{excluded}.{c}' for c in others)})"
        )
    else:
        changed = " OR ".join(f"{alias}.{c} IS NOT {excluded}.{c}" for c in others)
    return (
        f" ON CONFLICT ({key}) DO UPDATE SET {sets}"
        f" WHERE {alias}.{quote(SEQ)} = 0 AND ({changed})"
    )


class _PgMerge:
    """Merge a COPY batch into the target.

    When the batch's key range is still empty in the target (no row, no tombstone) the batch
    is COPied straight in, under a savepoint: a row the event stream inserts meanwhile makes
    the COPY fail on the primary key, and the batch falls back to the guarded merge. Otherwise
    rows go through a TEMP staging table and one ``INSERT … SELECT … ON CONFLICT``.
    """

    def __init__(self, spec: TableSpec, target: Database) -> None:
        self.spec, self.target = spec, target
        self.stage = f"_strangler_stage_{spec.index}"
        table, key = quote(spec.table.target), quote(spec.target_key)
        cols = ", ".join(quote(c) for c in spec.target_columns)
        target.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ON COMMIT DELETE ROWS AS"
            f" SELECT {cols} FROM {table} WITH NO DATA"
        )
        target.commit()
        self.copy_sql = f"COPY {self.stage} ({cols}) FROM STDIN"
        self.direct_sql = f"COPY {table} ({cols}) FROM STDIN"
        staged = ", ".join(f"s.{quote(c)}" for c in spec.target_columns)
        tomb = ""
        if spec.tombstone_sql:
            tomb = (
                f" WHERE NOT EXISTS (SELECT 1 FROM ({spec.tombstone_sql}) AS tb(k)"
                f" WHERE tb.k::text = s.{key}::text)"
            )
        self.merge_sql = (
            f"INSERT INTO {table} AS t ({cols}, {quote(SEQ)})"
            f" SELECT {staged}, 0 FROM {self.stage} AS s{tomb}"
            + _upsert_tail(spec, "t", "EXCLUDED", "row")
        )
        self.occupied_sql: str | None = None
        if is_integer_type(spec.target_types[spec.key_index]):
            occupied = f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {key} BETWEEN %(lo)s AND %(hi)s)"
            if spec.tombstone_sql:
                occupied += (
                    f" OR EXISTS (SELECT 1 FROM ({spec.tombstone_sql}) AS tb(k) WHERE CASE"
                    " WHEN tb.k::text ~ '^-?[0-9]+$' THEN tb.k::text::numeric BETWEEN"
                    " %(lo)s AND %(hi)s ELSE false END)"
                )
            self.occupied_sql = occupied

    def write(self, batch: _Batch) -> int:
        cur = self.target.conn.cursor()
        try:
            if self.occupied_sql is not None:
                cur.execute(
                    self.occupied_sql,
                    {"lo": int(batch.first_key), "hi": int(batch.last_key)},
                )
                (occupied,) = cur.fetchone()
                if not occupied:
                    cur.execute("SAVEPOINT strangler_direct")
                    try:
                        cur.copy_expert(
                            self.direct_sql, io.BytesIO(batch.copy_data or b"")
                        )
                        cur.execute("RELEASE SAVEPOINT strangler_direct")
                        return batch.rows
                    except psycopg2.errors.UniqueViolation:
                        cur.execute("ROLLBACK TO SAVEPOINT strangler_direct")
            cur.copy_expert(self.copy_sql, io.BytesIO(batch.copy_data or b""))
            cur.execute(self.merge_sql)
            return cur.rowcount
        finally:
            cur.close()


class _GenericMerge:
    """Row batches through DB-API: executemany on SQLite, execute_values on PostgreSQL."""

    def __init__(self, spec: TableSpec, target: Database) -> None:
        self.spec, self.target = spec, target
        cols = ", ".join(quote(c) for c in spec.target_columns)
        table = quote(spec.table.target)
        if target.is_pg:
            self.sql = (
                f"INSERT INTO {table} AS t ({cols}, {quote(SEQ)}) VALUES %s"
                + _upsert_tail(spec, "t", "EXCLUDED", "row")
            )
        else:
            marks = ", ".join("?" for _ in spec.target_columns)
            self.sql = (
                f"INSERT INTO {table} ({cols}, {quote(SEQ)}) VALUES ({marks}, 0)"
                + _upsert_tail(spec, table, "excluded", "or")
            )

    def write(self, batch: _Batch) -> int:
        rows = batch.values or []
        if self.spec.tombstone_sql:
            dead = {str(r[0]) for r in self.target.fetchall(self.spec.tombstone_sql)}
            rows = [r for r in rows if str(r[self.spec.key_index]) not in dead]
        if not rows:
            return 0
        cur = self.target.conn.cursor()
        try:
            if self.target.is_pg:
                execute_values(
                    cur, self.sql, [(*r, 0) for r in rows], page_size=len(rows)
                )
                return cur.rowcount
            before = self.target.conn.total_changes
            cur.executemany(self.sql, [tuple(to_sqlite(v) for v in r) for r in rows])
            return self.target.conn.total_changes - before
        finally:
            cur.close()
