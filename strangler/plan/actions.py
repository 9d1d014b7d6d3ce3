"""The actions a transition applies, each idempotent: running one twice (after a crash between
doing it and recording it) changes nothing the second time.

``modes``     dual-write modes of the plan's entities in one database (monolith or service)
``routes``    a new router config version routing the plan's endpoints (none if unchanged)
``sequences`` ``cutover-sequences``: service ids move past the legacy ids (before ``writes``)
``freeze``    legacy tables made read-only by a trigger (at ``owned``), or unfrozen

Freezing uses a trigger rather than REVOKE because the monolith's role owns its tables (an
owner can grant itself the rights back) and a trigger's error names the table and the plan.
"""

# ruff: noqa: S608 - SQL is built from plan identifiers that are validated and quoted

from __future__ import annotations

import copy
from typing import Any

from strangler.plan.resources import Resources
from strangler.plans import Plan
from strangler.routing.schema import RouterConfig, load_config
from strangler.sync.db import Database, quote

MODES_TABLE = "strangler_dualwrite_entitymode"
FREEZE_TRIGGER = "strangler_frozen"
FREEZE_FUNCTION = "strangler_frozen_table"


class ActionError(Exception):
    """An action could not be applied; the transition stays pending."""


# --- dual-write modes ---------------------------------------------------------------------


def read_modes(db: Database) -> dict[str, str]:
    if not db.table_exists(MODES_TABLE):
        raise ActionError(
            f"{MODES_TABLE} does not exist in {db.url.rsplit('/', 1)[-1]}; fix: run the "
            "migrations of strangler.dualwrite on that database"
        )
    rows = db.fetchall(f"SELECT entity, mode FROM {MODES_TABLE}")
    db.end_read()
    return dict(rows)


def apply_modes(db: Database, modes: dict[str, str]) -> dict[str, Any]:
    """Upsert every entity's mode in one transaction; returns the modes before."""
    before = read_modes(db)
    stamp = "now()" if db.is_pg else "CURRENT_TIMESTAMP"
    p = db.ph
    try:
        for entity, mode in modes.items():
            db.execute(
                f"INSERT INTO {MODES_TABLE} (entity, mode, updated_at)"
                f" VALUES ({p}, {p}, {stamp}) ON CONFLICT (entity)"
                f" DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at",
                (entity, mode),
            )
        db.commit()
    except Exception:
        db.rollback()
        raise
    return {"before": {e: before.get(e, "off") for e in modes}, "after": modes}


# --- router ------------------------------------------------------------------------------


def routed_config(
    config: RouterConfig, service: str, routes: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The live raw config with each plan endpoint's route set to ``routes[endpoint]``.

    A route with the same methods and path as the endpoint is adopted (its name kept);
    otherwise one named ``"<service> <endpoint>"`` is added.
    """
    raw = copy.deepcopy(config.raw)
    raw_routes = raw.setdefault("routes", [])
    for endpoint, fields in routes.items():
        method, path = endpoint.split(" ", 1)
        existing = config.find(endpoint)
        if existing is not None:
            entry = raw_routes[config.routes.index(existing)]
        else:
            entry = next(
                (r for r in raw_routes if r.get("name") == f"{service} {endpoint}"),
                None,
            )
            if entry is None:
                entry = {
                    "name": f"{service} {endpoint}",
                    "methods": [method],
                    "path": path,
                }
                raw_routes.append(entry)
        for key in ("shadow", "canary", "fallback"):
            entry.pop(key, None)
        entry.update(copy.deepcopy(fields))
    return raw


def preview_routes(
    resources: Resources, routes: dict[str, dict[str, Any]]
) -> tuple[int, RouterConfig, dict[str, Any]]:
    """(live version, live config, new raw config); ActionError if it would not validate."""
    from strangler.routing.schema import ConfigError, dump_config
    from strangler.routing.store import StoreError

    try:
        live = resources.route_store.live()
    except (StoreError, ConfigError) as exc:
        raise ActionError(f"router store {resources.route_store.root}: {exc}") from None
    raw = routed_config(live.config, resources.plan.service, routes)
    try:
        load_config(dump_config(raw), source="(plan routes)")
    except ConfigError as exc:
        raise ActionError(f"the new routes would not validate: {exc}") from None
    return live.version, live.config, raw


def apply_routes(
    resources: Resources,
    routes: dict[str, dict[str, Any]],
    *,
    why: str,
    who: str,
) -> dict[str, Any]:
    from strangler.routing.schema import dump_config
    from strangler.routing.store import StoreError

    version, config, raw = preview_routes(resources, routes)
    if raw == config.raw:
        return {"version": version, "changed": False}
    try:
        new = resources.route_store.commit(
            dump_config(raw),
            action=f"plan {resources.plan.service}",
            why=why,
            who=who,
            expect_parent=version,
        )
    except StoreError as exc:
        raise ActionError(str(exc)) from None
    return {"version": new, "parent": version, "changed": True}


# --- sequences ---------------------------------------------------------------------------


def apply_sequences(resources: Resources, gap: int) -> dict[str, Any]:
    from strangler.sync.sequences import cutover_sequences

    result = cutover_sequences(
        resources.plan, resources.source(), resources.target(), gap=gap, dry_run=False
    )
    return {t["table"]: t["action"] for t in result["tables"]}


# --- freezing ----------------------------------------------------------------------------


def is_frozen(db: Database, table: str) -> bool:
    if db.is_pg:
        row = db.fetchone(
            "SELECT count(*) FROM pg_trigger WHERE tgname = %s AND tgrelid = to_regclass(%s)",
            (FREEZE_TRIGGER, quote(table)),
        )
    else:
        row = db.fetchone(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?",
            (f"{FREEZE_TRIGGER}_insert_{table}",),
        )
    db.end_read()
    return bool(row and row[0])


def apply_freeze(
    db: Database, tables: list[str], *, frozen: bool, note: str
) -> dict[str, Any]:
    """Create (or drop) the trigger that refuses every write to each table; one transaction."""
    note = note.replace("'", "")
    try:
        if db.is_pg and frozen:
            db.execute(
                f"CREATE OR REPLACE FUNCTION {FREEZE_FUNCTION}() RETURNS trigger"
                " LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION"
                " 'table %% is frozen: %%', TG_TABLE_NAME, TG_ARGV[0]"
                " USING ERRCODE = 'read_only_sql_transaction'; END $$"
            )
        for table in tables:
            if db.is_pg:
                db.execute(f"DROP TRIGGER IF EXISTS {FREEZE_TRIGGER} ON {quote(table)}")
                if frozen:
                    db.execute(
                        f"CREATE TRIGGER {FREEZE_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE"
                        f" OR TRUNCATE ON {quote(table)} FOR EACH STATEMENT"
                        f" EXECUTE FUNCTION {FREEZE_FUNCTION}('{note}')"
                    )
                continue
            for op in ("insert", "update", "delete"):
                name = quote(f"{FREEZE_TRIGGER}_{op}_{table}")
                db.execute(f"DROP TRIGGER IF EXISTS {name}")
                if frozen:
                    db.execute(
                        f"CREATE TRIGGER {name} BEFORE {op.upper()} ON {quote(table)}"
                        f" BEGIN SELECT RAISE(ABORT, 'table {table} is frozen: {note}'); END"
                    )
        db.commit()
    except Exception:
        db.rollback()
        raise
    return {"tables": tables, "frozen": frozen}


# --- dispatch ----------------------------------------------------------------------------


def run(kind: str, params: dict[str, Any], resources: Resources) -> Any:
    """Apply one recorded action."""
    if kind == "modes":
        db = (
            resources.monolith()
            if params["database"] == "monolith"
            else resources.target()
        )
        return apply_modes(db, params["modes"])
    if kind == "routes":
        return apply_routes(
            resources, params["routes"], why=params["why"], who=params["who"]
        )
    if kind == "sequences":
        return apply_sequences(resources, int(params["gap"]))
    if kind == "freeze":
        return apply_freeze(
            resources.monolith(),
            params["tables"],
            frozen=params["frozen"],
            note=params["note"],
        )
    raise ActionError(f"unknown action kind {kind!r}")


def summary(plan: Plan, kind: str, params: dict[str, Any]) -> str:
    """One line saying what an action does."""
    if kind == "modes":
        modes = ", ".join(f"{e}={m}" for e, m in params["modes"].items())
        return f"dual-write modes on the {params['database']} database: {modes}"
    if kind == "routes":
        parts = []
        for endpoint, fields in params["routes"].items():
            extra = []
            if "shadow" in fields:
                shadow = fields["shadow"]
                percent = shadow.get("percent", 100)
                sampled = "" if percent >= 100 else f" {percent:g}%"
                extra.append(f"shadow {shadow['to']}{sampled}")
            if "canary" in fields:
                extra.append(
                    f"canary {fields['canary']['to']} {fields['canary']['percent']:g}%"
                )
            if "fallback" in fields:
                extra.append(f"fallback {fields['fallback']}")
            tail = f" ({', '.join(extra)})" if extra else ""
            parts.append(f"{endpoint} → {fields['to']}{tail}")
        return "router: " + "; ".join(parts)
    if kind == "sequences":
        return f"cutover-sequences {plan.service} (gap {params['gap']})"
    if kind == "freeze":
        verb = "freeze" if params["frozen"] else "unfreeze"
        return f"{verb} legacy tables {', '.join(params['tables'])}"
    return kind
