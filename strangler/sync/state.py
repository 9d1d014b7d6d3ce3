"""Sync bookkeeping kept in the TARGET database, so it commits with the rows it describes.

``strangler_sync_watermark``: per service and table, the last key copied, rows copied and the
fingerprint of the layout they were copied under. ``strangler_sync_verify``: one row per table
per verify run (result, differences, time), read by ``status`` and the plan gates.
"""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from strangler.sync.db import Database

WATERMARK = "strangler_sync_watermark"
VERIFY = "strangler_sync_verify"

_DDL = {
    "postgresql": [
        f"""CREATE TABLE IF NOT EXISTS {WATERMARK} (
            service text NOT NULL,
            "table" text NOT NULL,
            last_key text,
            rows_copied bigint NOT NULL DEFAULT 0,
            fingerprint text NOT NULL,
            fingerprint_detail text NOT NULL,
            started_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            completed_at timestamptz,
            PRIMARY KEY (service, "table"))""",
        f"""CREATE TABLE IF NOT EXISTS {VERIFY} (
            id bigserial PRIMARY KEY,
            service text NOT NULL,
            "table" text NOT NULL,
            ok boolean NOT NULL,
            differences integer NOT NULL,
            rows_checked bigint NOT NULL,
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL,
            report text)""",
        f'CREATE INDEX IF NOT EXISTS {VERIFY}_latest ON {VERIFY} (service, "table", id)',
    ],
    "sqlite": [
        f"""CREATE TABLE IF NOT EXISTS {WATERMARK} (
            service text NOT NULL, "table" text NOT NULL, last_key text,
            rows_copied integer NOT NULL DEFAULT 0, fingerprint text NOT NULL,
            fingerprint_detail text NOT NULL, started_at text NOT NULL,
            updated_at text NOT NULL, completed_at text,
            PRIMARY KEY (service, "table"))""",
        f"""CREATE TABLE IF NOT EXISTS {VERIFY} (
            id integer PRIMARY KEY AUTOINCREMENT, service text NOT NULL,
            "table" text NOT NULL, ok integer NOT NULL, differences integer NOT NULL,
            rows_checked integer NOT NULL, started_at text NOT NULL,
            finished_at text NOT NULL, report text)""",
    ],
}


def now() -> datetime:
    return datetime.now(UTC)


def ts(db: Database, value: datetime) -> Any:
    """A timestamp as ``db`` stores it."""
    return value if db.is_pg else value.isoformat()


def parse_ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ensure_tables(db: Database) -> None:
    for statement in _DDL[db.kind]:
        db.execute(statement)
    db.commit()


@dataclass
class Watermark:
    last_key: str | None
    rows_copied: int
    fingerprint: str
    fingerprint_detail: dict[str, Any]
    started_at: datetime | None
    updated_at: datetime | None
    completed_at: datetime | None


def read_watermark(db: Database, service: str, table: str) -> Watermark | None:
    if not db.table_exists(WATERMARK):
        return None
    p = db.ph
    row = db.fetchone(
        f"SELECT last_key, rows_copied, fingerprint, fingerprint_detail, started_at,"
        f' updated_at, completed_at FROM {WATERMARK} WHERE service = {p} AND "table" = {p}',
        (service, table),
    )
    db.end_read()
    if row is None:
        return None
    return Watermark(
        last_key=row[0],
        rows_copied=int(row[1]),
        fingerprint=row[2],
        fingerprint_detail=json.loads(row[3]),
        started_at=parse_ts(row[4]),
        updated_at=parse_ts(row[5]),
        completed_at=parse_ts(row[6]),
    )


def reset_watermark(
    db: Database, service: str, table: str, fingerprint: str, detail: dict[str, Any]
) -> None:
    """Start (or restart) a table's backfill from the first key; commits."""
    p = db.ph
    db.execute(
        f'DELETE FROM {WATERMARK} WHERE service = {p} AND "table" = {p}',
        (service, table),
    )
    stamp = ts(db, now())
    db.execute(
        f'INSERT INTO {WATERMARK} (service, "table", last_key, rows_copied, fingerprint,'
        f" fingerprint_detail, started_at, updated_at) VALUES ({p}, {p}, NULL, 0, {p}, {p}, {p}, {p})",
        (service, table, fingerprint, json.dumps(detail, sort_keys=True), stamp, stamp),
    )
    db.commit()


def accept_fingerprint(
    db: Database, service: str, table: str, fingerprint: str, detail: dict[str, Any]
) -> None:
    """Record a new fingerprint on an existing watermark (``--force``); commits."""
    p = db.ph
    db.execute(
        f"UPDATE {WATERMARK} SET fingerprint = {p}, fingerprint_detail = {p}"
        f' WHERE service = {p} AND "table" = {p}',
        (fingerprint, json.dumps(detail, sort_keys=True), service, table),
    )
    db.commit()


def advance_watermark(
    db: Database, service: str, table: str, last_key: str, rows: int
) -> None:
    """Move the watermark inside the caller's batch transaction (the caller commits)."""
    p = db.ph
    db.execute(
        f"UPDATE {WATERMARK} SET last_key = {p}, rows_copied = rows_copied + {p},"
        f' updated_at = {p}, completed_at = NULL WHERE service = {p} AND "table" = {p}',
        (last_key, rows, ts(db, now()), service, table),
    )


def complete_watermark(db: Database, service: str, table: str) -> None:
    p = db.ph
    stamp = ts(db, now())
    db.execute(
        f"UPDATE {WATERMARK} SET completed_at = {p}, updated_at = {p}"
        f' WHERE service = {p} AND "table" = {p}',
        (stamp, stamp, service, table),
    )
    db.commit()


def record_verify(
    db: Database,
    *,
    service: str,
    table: str,
    ok: bool,
    differences: int,
    rows_checked: int,
    started_at: datetime,
    finished_at: datetime,
    report: str | None,
) -> None:
    ensure_tables(db)
    p = db.ph
    db.execute(
        f'INSERT INTO {VERIFY} (service, "table", ok, differences, rows_checked, started_at,'
        f" finished_at, report) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
        (
            service,
            table,
            ok,
            differences,
            rows_checked,
            ts(db, started_at),
            ts(db, finished_at),
            report,
        ),
    )
    db.commit()


def last_verify(db: Database, service: str, table: str) -> dict[str, Any] | None:
    if not db.table_exists(VERIFY):
        return None
    p = db.ph
    row = db.fetchone(
        f"SELECT ok, differences, rows_checked, started_at, finished_at, report FROM {VERIFY}"
        f' WHERE service = {p} AND "table" = {p} ORDER BY id DESC LIMIT 1',
        (service, table),
    )
    db.end_read()
    if row is None:
        return None
    return {
        "ok": bool(row[0]),
        "differences": int(row[1]),
        "rows_checked": int(row[2]),
        "started_at": parse_ts(row[3]),
        "finished_at": parse_ts(row[4]),
        "report": row[5],
    }
