"""The plan-file schema: typed dataclasses and the explicit validation that builds them.

Validation collects every problem at once; each one names the key path (``tables[0].key``),
the line it came from and how to fix it. Identifiers are checked against a strict pattern
because sync interpolates them (quoted) into SQL.
"""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

STAGES: tuple[str, ...] = (
    "monolith",
    "dual-write",
    "shadow",
    "canary",
    "reads",
    "writes",
    "owned",
)

# gate name -> (kind, minimum, maximum, meaning)
GATES: dict[str, tuple[str, float | None, float | None, str]] = {
    "schema_preflight": ("bool", None, None, "service schema matches the plan"),
    "backfill_complete": ("bool", None, None, "every table's backfill finished"),
    "verify_max_age_seconds": ("number", 0, None, "newest clean verify is this fresh"),
    "verify_max_differences": ("int", 0, None, "differences allowed by verify"),
    "outbox_lag_max_seconds": ("number", 0, None, "forward event lag limit"),
    "reverse_lag_max_seconds": ("number", 0, None, "reverse event lag limit"),
    "parity_min_rate": ("number", 0, 1, "share of shadowed responses that match"),
    "parity_min_samples": ("int", 1, None, "shadowed responses needed for parity"),
    "canary_percent": ("number", 0, 100, "share of users routed to the service"),
    "canary_max_error_rate_ratio": ("number", 0, None, "service/monolith error ratio"),
    "canary_min_requests": ("int", 0, None, "canary requests needed to judge it"),
    "sequences_gap": ("int", 0, None, "ids kept free above the legacy maximum"),
}

TOP_KEYS = (
    "service",
    "version",
    "databases",
    "tables",
    "endpoints",
    "stages",
    "parity",
)
TABLE_KEYS = ("source", "target", "key", "columns", "tombstones")
COLUMN_KEYS = ("source", "target", "type")
TOMBSTONE_KEYS = ("table", "key", "where")
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
SERVICE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
SQL_TYPE = re.compile(r"^[a-z][a-z0-9_ ]*(\(\d+(, ?\d+)?\))?(\[\])?$")
ENDPOINT = re.compile(r"^([A-Z]+) (/\S*)$")


@dataclass(frozen=True)
class PlanIssue:
    """One problem in a plan file: where it is, what is wrong, how to fix it."""

    file: str
    line: int | None
    key: str
    problem: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key or '(top level)'}: {self.problem}; fix: {self.fix}"


class PlanError(ValueError):
    """A plan that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[PlanIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


@dataclass(frozen=True)
class Column:
    source: str
    target: str
    type: str | None = None


@dataclass(frozen=True)
class Tombstones:
    """Where the target keeps keys that events deleted (deletions by events are final)."""

    table: str
    key: str
    where: str | None = None

    def query(self) -> str:
        """SQL (run on the target) returning one column: every tombstoned key."""
        sql = f'SELECT "{self.key}" FROM "{self.table}"'
        return f"{sql} WHERE {self.where}" if self.where else sql


@dataclass(frozen=True)
class TablePlan:
    source: str
    target: str
    key: str
    columns: tuple[Column, ...]
    tombstones: Tombstones | None = None

    @property
    def key_column(self) -> Column:
        return next(c for c in self.columns if c.source == self.key)


@dataclass(frozen=True)
class Stage:
    name: str
    gates: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    service: str
    version: int
    path: str
    source_env: str
    target_env: str
    tables: tuple[TablePlan, ...]
    read_endpoints: tuple[str, ...] = ()
    write_endpoints: tuple[str, ...] = ()
    stages: tuple[Stage, ...] = ()
    parity: Mapping[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> TablePlan:
        """The table whose source or target is ``name``; KeyError naming the choices."""
        for table in self.tables:
            if name in (table.source, table.target):
                return table
        known = ", ".join(t.target for t in self.tables)
        raise KeyError(f"plan {self.service!r} has no table {name!r} (tables: {known})")

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"plan {self.service!r} has no stage {name!r}")


class _Checker:
    """Walks the raw YAML data, recording issues with their lines."""

    def __init__(self, file: str, lines: Mapping[str, int]) -> None:
        self.file = file
        self.lines = lines
        self.issues: list[PlanIssue] = []

    def fail(self, key: str, problem: str, fix: str) -> None:
        line, parent = self.lines.get(key), key
        while line is None and parent:
            parent = re.sub(r"(\.[^.\[]+|\[\d+\]|^[^.\[]+)$", "", parent)
            line = self.lines.get(parent)
        self.issues.append(PlanIssue(self.file, line, key, problem, fix))

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> bool:
        if not isinstance(value, Mapping):
            self.fail(
                key, f"must be a mapping, got {_kind(value)}", "write key: value pairs"
            )
            return False
        for name in value:
            if name not in allowed:
                self.fail(
                    _join(key, str(name)),
                    f"unknown key {name!r}",
                    _suggest(str(name), allowed),
                )
        return True

    def required(self, data: Mapping[str, Any], key: str, name: str) -> bool:
        if name not in data or data[name] is None:
            self.fail(
                _join(key, name),
                "is required",
                f"add `{name}:` under {key or 'the top level'}",
            )
            return False
        return True

    def pattern(
        self, value: Any, key: str, regex: re.Pattern[str], what: str, example: str
    ) -> bool:
        if not isinstance(value, str) or not regex.match(value):
            self.fail(key, f"{value!r} is not {what}", f"use {what}, e.g. {example!r}")
            return False
        return True


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _suggest(name: str, allowed: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "use one of " + ", ".join(allowed)


def build_plan(
    data: Any,
    *,
    file: str,
    lines: Mapping[str, int],
    validate_parity: Callable[[Mapping[str, Any]], None] | None = None,
) -> Plan:
    """Validate raw plan data; return the Plan or raise PlanError listing every problem."""
    check = _Checker(file, lines)
    if not check.mapping(data, "", TOP_KEYS):
        raise PlanError(check.issues)
    for name in ("service", "version", "databases", "tables"):
        check.required(data, "", name)
    service = data.get("service")
    if service is not None:
        check.pattern(service, "service", SERVICE, "a lower-case service name", "vote")
    version = data.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        check.fail(
            "version",
            f"{version!r} is not a positive integer",
            "write e.g. `version: 1`",
        )
    source_env, target_env = _databases(check, data.get("databases"))
    tables = _tables(check, data.get("tables"))
    read, write = _endpoints(check, data.get("endpoints"))
    stages = _stages(check, data.get("stages"))
    parity = data.get("parity") or {}
    if not isinstance(parity, Mapping):
        check.fail(
            "parity",
            f"must be a mapping, got {_kind(parity)}",
            "see strangler/compare/rules.py",
        )
    elif validate_parity is not None:
        try:
            validate_parity(parity)
        except ValueError as exc:
            where = re.search(r"parity(\.[A-Za-z_]\w*)*", str(exc))
            at = where.group(0) if where and where.group(0) in lines else "parity"
            check.fail(at, str(exc), "see strangler/compare/rules.py for the rule keys")
    if check.issues:
        raise PlanError(check.issues)
    return Plan(
        service=service,
        version=version,
        path=file,
        source_env=source_env,
        target_env=target_env,
        tables=tables,
        read_endpoints=read,
        write_endpoints=write,
        stages=stages,
        parity=dict(parity),
    )


def _databases(check: _Checker, raw: Any) -> tuple[str, str]:
    if raw is None or not check.mapping(raw, "databases", ("source", "target")):
        return "", ""
    for name, example in (
        ("source", "LEGACY_DATABASE_URL"),
        ("target", "VOTE_DATABASE_URL"),
    ):
        if check.required(raw, "databases", name):
            check.pattern(
                raw[name],
                f"databases.{name}",
                ENV_VAR,
                "an environment variable name",
                example,
            )
    return str(raw.get("source", "")), str(raw.get("target", ""))


def _tables(check: _Checker, raw: Any) -> tuple[TablePlan, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        check.fail(
            "tables",
            "must be a non-empty list",
            "list each table as `- source: ... target: ...`",
        )
        return ()
    tables: list[TablePlan] = []
    seen: dict[str, set[str]] = {"source": set(), "target": set()}
    for index, item in enumerate(raw):
        key = f"tables[{index}]"
        if not check.mapping(item, key, TABLE_KEYS):
            continue
        ok = all(
            [
                check.required(item, key, n)
                for n in ("source", "target", "key", "columns")
            ]
        )
        for side in ("source", "target"):
            name = item.get(side)
            if name is None:
                continue
            if check.pattern(
                name, f"{key}.{side}", IDENTIFIER, "a SQL table name", "polls_vote"
            ):
                if name in seen[side]:
                    check.fail(
                        f"{key}.{side}",
                        f"table {name!r} is listed twice",
                        "list each table once",
                    )
                seen[side].add(name)
        columns = _columns(check, item.get("columns"), f"{key}.columns")
        pk = item.get("key")
        if pk is not None and columns and pk not in {c.source for c in columns}:
            check.fail(
                f"{key}.key",
                f"key {pk!r} is not one of the columns",
                "add it to `columns:` or name a listed source column",
            )
        tombstones = _tombstones(check, item.get("tombstones"), f"{key}.tombstones")
        if ok and columns:
            tables.append(
                TablePlan(
                    source=item["source"],
                    target=item["target"],
                    key=pk,
                    columns=columns,
                    tombstones=tombstones,
                )
            )
    return tuple(tables)


def _columns(check: _Checker, raw: Any, key: str) -> tuple[Column, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        check.fail(key, "must be a non-empty list", "list columns as `- source: id`")
        return ()
    columns: list[Column] = []
    names: dict[str, set[str]] = {"source": set(), "target": set()}
    for index, item in enumerate(raw):
        at = f"{key}[{index}]"
        if isinstance(item, str):
            item = {"source": item}
        if not check.mapping(item, at, COLUMN_KEYS) or not check.required(
            item, at, "source"
        ):
            continue
        source = item["source"]
        target = item.get("target", source)
        valid = check.pattern(
            source, f"{at}.source", IDENTIFIER, "a SQL column name", "choice_id"
        )
        valid &= check.pattern(
            target, f"{at}.target", IDENTIFIER, "a SQL column name", "choice_id"
        )
        type_ = item.get("type")
        if type_ is not None:
            valid &= check.pattern(
                type_, f"{at}.type", SQL_TYPE, "a SQL type", "bigint"
            )
        if valid and target == "seq":
            check.fail(
                f"{at}.target",
                "`seq` is the event version column sync manages",
                "map the column to another name",
            )
            valid = False
        for side, name in (("source", source), ("target", target)):
            if valid and name in names[side]:
                check.fail(
                    f"{at}.{side}",
                    f"column {name!r} is listed twice",
                    "list each column once",
                )
                valid = False
            names[side].add(name)
        if valid:
            columns.append(Column(source=source, target=target, type=type_))
    return tuple(columns)


def _tombstones(check: _Checker, raw: Any, key: str) -> Tombstones | None:
    if raw is None or not check.mapping(raw, key, TOMBSTONE_KEYS):
        return None
    ok = check.required(raw, key, "table") & check.required(raw, key, "key")
    if ok:
        ok &= check.pattern(
            raw["table"],
            f"{key}.table",
            IDENTIFIER,
            "a SQL table name",
            "strangler_tombstone",
        )
        ok &= check.pattern(
            raw["key"], f"{key}.key", IDENTIFIER, "a SQL column name", "aggregate_id"
        )
    where = raw.get("where")
    if where is not None and (not isinstance(where, str) or ";" in where):
        check.fail(
            f"{key}.where",
            "must be one SQL condition without `;`",
            "write e.g. \"aggregate = 'vote'\"",
        )
        ok = False
    return Tombstones(raw["table"], raw["key"], where) if ok else None


def _endpoints(check: _Checker, raw: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if raw is None or not check.mapping(raw, "endpoints", ("read", "write")):
        return (), ()
    result: list[tuple[str, ...]] = []
    for side in ("read", "write"):
        items = raw.get(side) or []
        if not isinstance(items, list):
            check.fail(
                f"endpoints.{side}",
                "must be a list",
                'write e.g. ["GET /api/votes/**"]',
            )
            result.append(())
            continue
        for index, item in enumerate(items):
            at = f"endpoints.{side}[{index}]"
            match = ENDPOINT.match(item) if isinstance(item, str) else None
            if not match:
                check.fail(
                    at,
                    f"{item!r} is not `METHOD /path`",
                    'write e.g. "GET /api/votes/**"',
                )
            elif match.group(1) not in METHODS:
                check.fail(
                    at,
                    f"unknown method {match.group(1)!r}",
                    _suggest(match.group(1), METHODS),
                )
        result.append(tuple(str(i) for i in items))
    return result[0], result[1]


def _stages(check: _Checker, raw: Any) -> tuple[Stage, ...]:
    if raw is None:
        return tuple(Stage(name) for name in STAGES)
    if not isinstance(raw, list) or not raw:
        check.fail(
            "stages", "must be a non-empty list", "list stages as `- name: monolith`"
        )
        return ()
    stages: list[Stage] = []
    for index, item in enumerate(raw):
        at = f"stages[{index}]"
        if isinstance(item, str):
            item = {"name": item}
        if not check.mapping(item, at, ("name", "gates")) or not check.required(
            item, at, "name"
        ):
            continue
        name = item["name"]
        if name not in STAGES:
            check.fail(
                f"{at}.name", f"unknown stage {name!r}", _suggest(str(name), STAGES)
            )
            continue
        if stages and STAGES.index(name) <= STAGES.index(stages[-1].name):
            check.fail(
                f"{at}.name",
                f"stage {name!r} comes after {stages[-1].name!r}",
                "keep the order " + " → ".join(STAGES),
            )
            continue
        stages.append(Stage(name, _gates(check, item.get("gates"), f"{at}.gates")))
    names = [s.name for s in stages]
    if names and (names[0] != STAGES[0] or names[-1] != STAGES[-1]):
        check.fail(
            "stages",
            "must start at 'monolith' and end at 'owned'",
            "add the missing first/last stage",
        )
    return tuple(stages)


def _gates(check: _Checker, raw: Any, key: str) -> dict[str, Any]:
    if raw is None or not check.mapping(raw, key, tuple(GATES)):
        return {}
    gates: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in GATES:
            continue
        kind, low, high, meaning = GATES[name]
        at = f"{key}.{name}"
        if kind == "bool":
            if not isinstance(value, bool):
                check.fail(
                    at,
                    f"{value!r} is not true/false",
                    f"write `{name}: true` ({meaning})",
                )
                continue
        else:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if not numeric or (kind == "int" and not isinstance(value, int)):
                check.fail(
                    at,
                    f"{value!r} is not {'an integer' if kind == 'int' else 'a number'}",
                    f"give a value for {meaning}",
                )
                continue
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = (
                    f"between {low} and {high}"
                    if high is not None
                    else f"at least {low}"
                )
                check.fail(at, f"{value!r} is out of range", f"use a value {bounds}")
                continue
        gates[name] = value
    return gates
