"""cutover-sequences: before writes move, push each target id sequence past the legacy ids.

The next id the service issues becomes ``max(legacy max + gap, service max) + 1``, where the
legacy max is the larger of the source table's max key and its own sequence (ids handed out
to transactions still in flight count too). A sequence is only ever moved forward, so running
the command twice changes nothing the second time.
"""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

from typing import Any

from strangler.plans import Plan
from strangler.sync.db import Database, SyncError, is_integer_type, quote


def _pg_sequence(db: Database, table: str, column: str) -> str | None:
    row = db.fetchone("SELECT pg_get_serial_sequence(%s, %s)", (quote(table), column))
    db.end_read()
    return row[0] if row else None


def _pg_next(db: Database, sequence: str) -> int:
    """The value nextval() would return now."""
    row = db.fetchone(
        f"SELECT last_value, is_called, (SELECT seqincrement FROM pg_sequence"
        f" WHERE seqrelid = %s::regclass) FROM {sequence}",
        (sequence,),
    )
    db.end_read()
    assert row is not None
    return int(row[0]) + (int(row[2]) if row[1] else 0)


def _max(db: Database, table: str, key: str) -> int:
    row = db.fetchone(f"SELECT max({quote(key)}) FROM {quote(table)}")
    db.end_read()
    return int(row[0]) if row and row[0] is not None else 0


def cutover_sequences(
    plan: Plan, source: Database, target: Database, *, gap: int, dry_run: bool
) -> dict[str, Any]:
    if gap < 0:
        raise SyncError("--gap must be zero or more")
    tables = []
    for table in plan.tables:
        key_target = table.key_column.target
        types = target.columns(table.target)
        if not types:
            raise SyncError(
                f"{plan.path}: {table.target!r} does not exist in the target database"
            )
        if not is_integer_type(types.get(key_target, "")):
            tables.append(
                {
                    "table": table.target,
                    "action": "skip",
                    "why": "key is not an integer",
                }
            )
            continue
        legacy = _max(source, table.source, table.key)
        if source.is_pg:
            src_seq = _pg_sequence(source, table.source, table.key)
            if src_seq:
                legacy = max(legacy, _pg_next(source, src_seq) - 1)
        service_max = _max(target, table.target, key_target)
        wanted = max(legacy + gap, service_max) + 1
        entry: dict[str, Any] = {
            "table": table.target,
            "legacy_max": legacy,
            "service_max": service_max,
            "wanted_next": wanted,
        }
        if target.is_pg:
            sequence = _pg_sequence(target, table.target, key_target)
            if sequence is None:
                entry.update(
                    action="skip", why="no sequence (ids come from the legacy side)"
                )
                tables.append(entry)
                continue
            current = _pg_next(target, sequence)
        else:
            sequence = "sqlite_sequence"
            row = target.fetchone(
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (table.target,)
            )
            current = (int(row[0]) if row else 0) + 1
        entry.update(sequence=sequence, current_next=current)
        if current >= wanted:
            entry.update(action="none", why="already past the legacy ids")
        else:
            entry.update(action="would set" if dry_run else "set")
            if not dry_run:
                _set_next(target, sequence, table.target, wanted)
        tables.append(entry)
    return {
        "service": plan.service,
        "gap": gap,
        "dry_run": dry_run,
        "ok": True,
        "tables": tables,
    }


def _set_next(db: Database, sequence: str, table: str, wanted: int) -> None:
    if db.is_pg:
        # GREATEST re-reads the sequence in the same statement, so a concurrent nextval()
        # between our read and this write is never moved backwards.
        db.execute(
            f"SELECT setval(%s::regclass, GREATEST(%s, (SELECT CASE WHEN is_called THEN"
            f" last_value ELSE last_value - 1 END FROM {sequence})), true)",
            (sequence, wanted - 1),
        )
    else:
        updated = db.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?",
            (wanted - 1, table),
        )
        if not updated:
            db.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                (table, wanted - 1),
            )
    db.commit()
