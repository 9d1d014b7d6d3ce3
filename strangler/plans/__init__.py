"""Plan files (``migrations_plan/<service>.yaml``): their schema and a loader whose errors name
the file, the line, the key and the fix."""

from __future__ import annotations

from strangler.plans.loader import default_plan_path, load_plan, load_plan_text
from strangler.plans.schema import (
    GATES,
    STAGES,
    Column,
    Plan,
    PlanError,
    PlanIssue,
    Stage,
    TablePlan,
    Tombstones,
)

__all__ = [
    "GATES",
    "STAGES",
    "Column",
    "Plan",
    "PlanError",
    "PlanIssue",
    "Stage",
    "TablePlan",
    "Tombstones",
    "default_plan_path",
    "load_plan",
    "load_plan_text",
]
