"""What each stage means for one plan: dual-write modes on both databases, the routes for the
plan's endpoints, and which legacy tables are frozen.

The engine never stores "what to undo": every stage has one desired state, computed here from
the plan, and a transition (forwards or back) applies the target stage's state. That makes every
action idempotent and a rollback the same code as an advance.

Which tables a service *takes over* (versus reference copies it only keeps in sync, like the
vote service's ``votes_choiceref``): a table is a reference copy when its target name ends in
``ref``; every other table is owned. A table's dual-write entity is the one its tombstones'
``where`` names (``entity = 'vote'``), else the source table name after its last ``_``
(``polls_vote`` → ``vote``). Only owned tables' entities get their modes flipped and only owned
tables are frozen at ``owned``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from strangler.plans import Plan, TablePlan

MONOLITH_BACKEND = "monolith"
DEFAULT_CANARY_PERCENT = 5.0
DEFAULT_SEQUENCES_GAP = 1000

# (monolith database mode, service database mode) per stage
MODES: dict[str, tuple[str, str]] = {
    "monolith": ("off", "off"),
    "dual-write": ("forward", "reverse"),
    "shadow": ("forward", "reverse"),
    "canary": ("forward", "reverse"),
    "reads": ("forward", "reverse"),
    "writes": ("reverse", "forward"),
    "owned": ("reverse", "off"),
}

_ENTITY_WHERE = re.compile(r"""^\s*entity\s*=\s*'([A-Za-z0-9_-]+)'\s*$""")


def is_reference(table: TablePlan) -> bool:
    return table.target.endswith("ref")


def owned_tables(plan: Plan) -> list[TablePlan]:
    return [t for t in plan.tables if not is_reference(t)]


def entity_of(table: TablePlan) -> str:
    if table.tombstones is not None and table.tombstones.where:
        match = _ENTITY_WHERE.match(table.tombstones.where)
        if match:
            return match.group(1)
    return table.source.rsplit("_", 1)[-1]


def entities(plan: Plan) -> list[str]:
    seen: list[str] = []
    for table in owned_tables(plan):
        name = entity_of(table)
        if name not in seen:
            seen.append(name)
    return seen


def stage_names(plan: Plan) -> list[str]:
    return [s.name for s in plan.stages]


def gate_value(plan: Plan, stage: str, name: str, default: Any) -> Any:
    """A stage's gate setting, else the same setting of any earlier stage, else default."""
    names = stage_names(plan)
    for candidate in reversed(names[: names.index(stage) + 1]):
        gates = plan.stage(candidate).gates
        if name in gates:
            return gates[name]
    return default


def _index(stage: str) -> int:
    return list(MODES).index(stage)


@dataclass(frozen=True)
class Desired:
    """Everything a stage implies; ``routes`` maps endpoint → route fields."""

    stage: str
    monolith_modes: dict[str, str]
    service_modes: dict[str, str]
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    frozen: bool = False
    canary_percent: float | None = None


def desired(
    plan: Plan, stage: str, *, service_dry_run: bool, service_backend: str | None = None
) -> Desired:
    """The state ``stage`` implies. ``service_dry_run``: the service backend executes shadowed
    writes in a rolled-back transaction, so write endpoints can be shadowed too."""
    backend = service_backend or plan.service
    mono_mode, service_mode = MODES[stage]
    ents = entities(plan)
    at = _index(stage)
    percent = float(
        gate_value(plan, "canary", "canary_percent", DEFAULT_CANARY_PERCENT)
    )
    routes: dict[str, dict[str, Any]] = {}
    for endpoint in plan.read_endpoints:
        route: dict[str, Any] = {"to": MONOLITH_BACKEND}
        if at >= _index("reads"):
            route["to"] = backend
            if at < _index("owned"):
                route["fallback"] = MONOLITH_BACKEND
        elif at >= _index("shadow"):
            route["shadow"] = {"to": backend, "percent": 100}
            if at == _index("canary"):
                route["canary"] = {"to": backend, "percent": percent, "key": "user"}
        routes[endpoint] = route
    for endpoint in plan.write_endpoints:
        route = {"to": MONOLITH_BACKEND}
        if at >= _index("writes"):
            route["to"] = backend
        elif at >= _index("shadow") and service_dry_run:
            route["shadow"] = {"to": backend, "percent": 100}
        elif at == _index("dual-write") and service_dry_run:
            # Sampled at 0 %: nothing is shadowed yet, but the router asks the monolith
            # for each write's events and keeps them per user, so the first dry runs at
            # `shadow` wait for the writes made just before it (docs/router.md, "Causal
            # fences").
            route["shadow"] = {"to": backend, "percent": 0}
        routes[endpoint] = route
    return Desired(
        stage=stage,
        monolith_modes=dict.fromkeys(ents, mono_mode),
        service_modes=dict.fromkeys(ents, service_mode),
        routes=routes,
        frozen=stage == "owned",
        canary_percent=percent if stage == "canary" else None,
    )
