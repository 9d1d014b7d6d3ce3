"""One plan table resolved against both catalogs: checked columns, types and fingerprint."""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from strangler import __version__
from strangler.plans import Plan, TablePlan
from strangler.sync.db import Database, SyncError, quote

SEQ = "seq"


@dataclass(frozen=True)
class TableSpec:
    plan: Plan
    table: TablePlan
    index: int
    source_types: tuple[str, ...]  # per plan column, after the plan's cast
    target_types: tuple[str, ...]
    tombstone_sql: str | None  # query on the target returning tombstoned keys

    @property
    def key_type(self) -> str:
        return self.source_types[self.key_index]

    @property
    def key_index(self) -> int:
        return [c.source for c in self.table.columns].index(self.table.key)

    @property
    def target_key(self) -> str:
        return self.table.key_column.target

    def source_select(self) -> list[str]:
        """Source column expressions in plan order, cast where the plan says so."""
        return [
            f"{quote(c.source)}::{c.type}" if c.type else quote(c.source)
            for c in self.table.columns
        ]

    @property
    def target_columns(self) -> list[str]:
        return [c.target for c in self.table.columns]

    def fingerprint_detail(self) -> dict[str, object]:
        return {
            "plan_version": self.plan.version,
            "source": self.table.source,
            "target": self.table.target,
            "key": self.table.key,
            "columns": [
                [c.source, c.target, t]
                for c, t in zip(self.table.columns, self.source_types, strict=True)
            ],
            "tool_version": __version__,
        }

    def fingerprint(self) -> str:
        text = json.dumps(self.fingerprint_detail(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def resolve(
    plan: Plan, source: Database, target: Database, only: list[str] | None = None
) -> list[TableSpec]:
    """Check every (selected) plan table against the live catalogs; SyncError says the fix."""
    specs: list[TableSpec] = []
    wanted = set(only or [])
    for name in wanted:
        try:
            plan.table(name)
        except KeyError as exc:
            raise SyncError(
                f"{plan.path}: {exc.args[0]}; fix: pass a table the plan lists"
            ) from None
    for index, table in enumerate(plan.tables):
        if wanted and not wanted & {table.source, table.target}:
            continue
        at = f"{plan.path}: tables[{index}]"
        source_cols = source.columns(table.source)
        if not source_cols:
            raise SyncError(
                f"{at}.source: table {table.source!r} does not exist in the source database;"
                " fix: correct the plan or the source URL"
            )
        target_cols = target.columns(table.target)
        if not target_cols:
            raise SyncError(
                f"{at}.target: table {table.target!r} does not exist in the target database;"
                " fix: run the service's migrations first"
            )
        if SEQ not in target_cols:
            raise SyncError(
                f"{at}.target: {table.target!r} has no {SEQ!r} column (the event version);"
                " fix: migrate the service to the plan's layout"
            )
        source_types, target_types = [], []
        for ci, column in enumerate(table.columns):
            if column.source not in source_cols:
                raise SyncError(
                    f"{at}.columns[{ci}].source: {table.source!r} has no column "
                    f"{column.source!r} (has {', '.join(source_cols)}); fix: correct the plan"
                )
            if column.target not in target_cols:
                raise SyncError(
                    f"{at}.columns[{ci}].target: {table.target!r} has no column "
                    f"{column.target!r} (has {', '.join(target_cols)}); fix: correct the plan"
                    " or migrate the service"
                )
            source_types.append(column.type or source_cols[column.source])
            target_types.append(target_cols[column.target])
        specs.append(
            TableSpec(
                plan=plan,
                table=table,
                index=index,
                source_types=tuple(source_types),
                target_types=tuple(target_types),
                tombstone_sql=_tombstones(table, target),
            )
        )
    return specs


def _tombstones(table: TablePlan, target: Database) -> str | None:
    """The tombstone query, or None while its table does not exist yet.

    The tombstone table is created by the service's consumer migrations; before it exists no
    event can have deleted anything, so there is nothing to exclude.
    """
    if table.tombstones is None or not target.table_exists(table.tombstones.table):
        return None
    sql = table.tombstones.query()
    try:
        target.fetchall(f"SELECT * FROM ({sql}) AS tb LIMIT 0")
    except Exception as exc:
        target.rollback()
        raise SyncError(
            f"{table.target}: tombstone query failed ({str(exc).strip()}); fix: the plan's"
            " tombstones key/where must match the tombstone table"
        ) from None
    target.end_read()
    return sql
