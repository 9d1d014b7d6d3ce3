"""Status, advance and rollback of one plan: gates first, then the transition's actions with a
write-ahead record, so a crash halfway is explained by ``status`` and finished by the next
``advance`` (or undone by ``rollback``).

A transition is saved as ``pending`` (every action listed, none done) before the first action
runs; each action is marked done as soon as it has been applied; the stage changes and the
history line is appended only once all are done. Exit codes are in ``Exit``.
"""

from __future__ import annotations

import getpass
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2

from strangler.plan import actions
from strangler.plan.gates import (
    GateContext,
    GateResult,
    NoData,
    evaluate,
    newest_verifies,
)
from strangler.plan.resources import Resources, Unavailable
from strangler.plan.stages import (
    DEFAULT_SEQUENCES_GAP,
    MONOLITH_BACKEND,
    desired,
    gate_value,
    is_reference,
    owned_tables,
    stage_names,
)
from strangler.plan.store import (
    Action,
    FileStore,
    PgStore,
    PlanState,
    Transition,
    now_iso,
)
from strangler.plans import Plan
from strangler.sync.db import SyncError

PAUSE_ENV = "STRANGLER_PLAN_PAUSE_AFTER_ACTION"
# Running processes cache modes for up to one second (strangler.dualwrite.modes); a
# transition that changed a mode returns only after every cache has expired, so that what
# the operator runs next (a backfill after ``dual-write``) never races an old mode.
MODES_SETTLE_SECONDS = 1.2


class Exit:
    OK = 0
    REFUSED = 1  # a gate failed, or another command holds the lock
    BAD_INPUT = 2  # unknown service or stage, broken plan, nothing to do
    INCOMPLETE = 3  # a transition is pending and needs `advance` or `rollback`


class PlanCommandError(Exception):
    """Bad input: nothing was changed."""

    def __init__(self, message: str, exit_code: int = Exit.BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Outcome:
    code: int
    data: dict[str, Any] = field(default_factory=dict)


def default_actor() -> str:
    for name in ("STRANGLER_ACTOR", "USER"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _changed_modes(action: Action) -> bool:
    result = action.result if action.kind == "modes" else None
    return isinstance(result, dict) and result.get("before") != result.get("after")


class Engine:
    def __init__(
        self, plan: Plan, store: FileStore | PgStore, resources: Resources
    ) -> None:
        self.plan = plan
        self.store = store
        self.resources = resources
        self.stages = stage_names(plan)
        self.service_backend = plan.service

    # --- helpers -------------------------------------------------------------------------

    def state(self) -> PlanState:
        state = self.store.load(self.plan.service)
        if state.stage not in self.stages:
            raise PlanCommandError(
                f"{self.plan.path}: the stored stage {state.stage!r} is not in the plan's "
                f"stages ({', '.join(self.stages)}); fix: restore the stage to the plan"
            )
        return state

    def _next(self, stage: str) -> str | None:
        index = self.stages.index(stage)
        return self.stages[index + 1] if index + 1 < len(self.stages) else None

    def _previous(self, stage: str) -> str | None:
        index = self.stages.index(stage)
        return self.stages[index - 1] if index > 0 else None

    def _service_dry_run(self) -> bool:
        try:
            backend = self.resources.route_store.live().config.backends.get(
                self.service_backend
            )
        except Exception:
            return False
        return bool(backend and backend.dry_run)

    def _crosses(self, kind: str, from_stage: str, to_stage: str, stage: str) -> bool:
        """True when an advance from ``from_stage`` to ``to_stage`` enters ``stage``."""
        if kind != "advance" or stage not in self.stages:
            return False
        at = self.stages.index(stage)
        return self.stages.index(to_stage) >= at > self.stages.index(from_stage)

    def _actions(
        self, kind: str, from_stage: str, to_stage: str, *, who: str, why: str
    ) -> list[Action]:
        """The ordered actions that take the system to ``to_stage``'s desired state."""
        want = desired(
            self.plan,
            to_stage,
            service_dry_run=self._service_dry_run(),
            service_backend=self.service_backend,
        )
        specs: list[tuple[str, dict[str, Any]]] = []
        # Service ids must be past the legacy ids before the service inserts anything of
        # its own: at ``shadow`` it already runs shadowed writes as rolled-back dry runs
        # (a colliding id would answer 500 and fail parity), and at ``writes`` for real.
        # Moving the sequence is idempotent, so it runs again on the way into ``writes``.
        if self._crosses(kind, from_stage, to_stage, "shadow") or self._crosses(
            kind, from_stage, to_stage, "writes"
        ):
            gap = gate_value(
                self.plan, "writes", "sequences_gap", DEFAULT_SEQUENCES_GAP
            )
            specs.append(("sequences", {"gap": gap}))
        modes = [
            ("modes", {"database": "monolith", "modes": want.monolith_modes}),
            ("modes", {"database": "service", "modes": want.service_modes}),
        ]
        routes = (
            "routes",
            {
                "routes": want.routes,
                "why": f"plan {self.plan.service}: {kind} {from_stage} → {to_stage}"
                + (f": {why}" if why else ""),
                "who": who,
            },
        )
        freeze = []
        if "owned" in (from_stage, to_stage):
            freeze = [
                (
                    "freeze",
                    {
                        "tables": [t.source for t in owned_tables(self.plan)],
                        "frozen": want.frozen,
                        "note": f"owned by the {self.plan.service} service "
                        f"(strangler plan {self.plan.service})",
                    },
                )
            ]
        if not want.monolith_modes:
            modes = []
        if kind == "advance":
            specs += [*modes, routes, *freeze]
        else:
            specs += [*freeze, routes, *reversed(modes)]
        return [
            Action(kind=k, params=p, description=actions.summary(self.plan, k, p))
            for k, p in specs
        ]

    def _preflight(self, transition_actions: list[Action]) -> list[GateResult]:
        """Can every action run? Checked before anything changes."""
        results = []
        kinds = {a.kind for a in transition_actions}
        needs = []
        if "modes" in kinds or "freeze" in kinds:
            needs.append(("monolith database", self.resources.monolith))
        if "modes" in kinds or "sequences" in kinds:
            needs.append(("service database", self.resources.target))
        if "sequences" in kinds:
            needs.append(("legacy database", self.resources.source))
        for label, opener in needs:
            try:
                db = opener()
                if label != "legacy database" and "modes" in kinds:
                    actions.read_modes(db)
                results.append(
                    GateResult(f"preflight: {label}", "ok", "reachable", True)
                )
            except (Unavailable, actions.ActionError, SyncError) as exc:
                results.append(
                    GateResult(
                        f"preflight: {label}", None, "reachable", False, str(exc)
                    )
                )
        for action in transition_actions:
            if action.kind != "routes":
                continue
            try:
                version, config, _ = actions.preview_routes(
                    self.resources, action.params["routes"]
                )
                missing = [
                    b
                    for b in (MONOLITH_BACKEND, self.service_backend)
                    if b not in config.backends
                ]
                if missing:
                    raise actions.ActionError(
                        f"router config v{version} has no backend {', '.join(missing)}; "
                        "fix: add it under backends with `strangler route apply`"
                    )
                results.append(
                    GateResult("preflight: router", f"v{version}", "valid routes", True)
                )
            except actions.ActionError as exc:
                results.append(
                    GateResult(
                        "preflight: router", None, "valid routes", False, str(exc)
                    )
                )
        return results

    def _gates(self, to_stage: str, *, fresh_verify: bool) -> list[GateResult]:
        ctx = GateContext(
            plan=self.plan,
            stage=to_stage,
            thresholds=dict(self.plan.stage(to_stage).gates),
            resources=self.resources,
            fresh_verify=fresh_verify,
            service_backend=self.service_backend,
        )
        return evaluate(ctx)

    def _reverse_drained(self, effective_from: str, to_stage: str) -> list[GateResult]:
        """Leaving ``writes`` (or later) for a stage before it: no service write may be
        left unsent to the monolith."""
        if "writes" not in self.stages:
            return []
        writes = self.stages.index("writes")
        if not (
            self.stages.index(effective_from) >= writes > self.stages.index(to_stage)
        ):
            return []
        from strangler.sync.lag import outbox_lag_seconds

        name = "reverse_lag_drained"
        try:
            lag = outbox_lag_seconds(self.resources.target())
        except (Unavailable, SyncError, psycopg2.Error) as exc:
            return [GateResult(name, None, 0, False, f"no data: {exc}")]
        if lag is None:
            return [
                GateResult(
                    name, None, 0, False, "no data: no outbox in the service database"
                )
            ]
        return [
            GateResult(
                name,
                round(lag, 3),
                0,
                lag == 0,
                "service outbox drained"
                if lag == 0
                else f"oldest unsent service event waited {lag:.1f}s; wait for the "
                "reverse relay to drain it",
            )
        ]

    def _legacy_still_current(
        self, effective_from: str, pending: Any, *, fresh_verify: bool
    ) -> list[GateResult]:
        """Leaving a completed ``owned``: there the service no longer publishes to the
        monolith and the legacy tables are frozen, so a write made since exists only in the
        service. Going back is safe only while a verify finds the legacy tables still equal
        to the service's; otherwise the rollback is refused with the differences counted."""
        if pending is not None or effective_from != "owned":
            return []
        ctx = GateContext(
            plan=self.plan,
            stage="owned",
            # age 0: always a fresh verify on a real rollback; a dry run reports the last one
            thresholds={"verify_max_differences": 0, "verify_max_age_seconds": 0},
            resources=self.resources,
            fresh_verify=fresh_verify,
            service_backend=self.service_backend,
        )
        name = "legacy_equals_service"
        try:
            verifies = newest_verifies(ctx)  # one per plan table, in plan order
        except (NoData, Unavailable, SyncError, psycopg2.Error) as exc:
            return [GateResult(name, None, 0, False, f"no data: {exc}")]
        # Reference copies flow from the monolith to the service, never back: only the
        # tables the service took over can hold writes the legacy side lacks.
        owned = [
            v
            for table, v in zip(self.plan.tables, verifies, strict=True)
            if not is_reference(table)
        ]
        if any(v is None for v in owned):
            return [GateResult(name, None, 0, False, "no data: no verify has run")]
        differences = sum(v["differences"] for v in owned)
        passed = differences == 0
        detail = (
            "the legacy tables still equal the service's"
            if passed
            else f"{differences} difference(s) in the tables the service owns: rows "
            "written while owned exist only in the service; rolling back would lose "
            f"them (see `strangler sync verify {self.plan.service} --report FILE`)"
        )
        return [GateResult(name, differences, 0, passed, detail)]

    def _history(
        self,
        transition: Transition,
        outcome: str,
        gates: list[GateResult] | list[dict[str, Any]],
        detail: str = "",
    ) -> dict[str, Any]:
        entry = {
            "service": self.plan.service,
            "kind": transition.kind,
            "from": transition.from_stage,
            "to": transition.to_stage,
            "who": transition.actor,
            "when": now_iso(),
            "started_at": transition.started_at,
            "reason": transition.reason,
            "outcome": outcome,
            "gates": [g.to_dict() if isinstance(g, GateResult) else g for g in gates],
            "actions": [
                {"description": a.description, "done": a.done, "result": a.result}
                for a in transition.actions
            ],
        }
        if detail:
            entry["detail"] = detail
        self.store.append_history(entry)
        return entry

    def _execute(
        self, state: PlanState, transition: Transition, outcome: str
    ) -> Outcome:
        state.pending = transition
        self.store.save(state)  # the write-ahead record
        pause_after = int(os.environ.get(PAUSE_ENV) or 0)
        for number, action in enumerate(transition.actions, start=1):
            if action.done:
                continue
            try:
                action.result = actions.run(action.kind, action.params, self.resources)
            except (
                Exception
            ) as exc:  # every failure leaves an explainable pending state
                self.store.save(state)
                message = f"{action.description}: {type(exc).__name__}: {exc}".strip()
                self._history(transition, "incomplete", transition.gates, message)
                return Outcome(
                    Exit.INCOMPLETE,
                    {
                        "ok": False,
                        "error": f"action {number} failed: {message}",
                        "pending": transition.to_dict(),
                        "fix": f"fix the cause, then `strangler plan {transition.kind} "
                        f"{self.plan.service}` to finish or `strangler plan rollback "
                        f"{self.plan.service}` to undo",
                    },
                )
            action.done = True
            self.store.save(state)
            if number == pause_after:
                print(
                    f"plan {self.plan.service}: paused after action {number} ({PAUSE_ENV})",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(3600)
        if any(_changed_modes(a) for a in transition.actions):
            time.sleep(MODES_SETTLE_SECONDS)
        state.stage = transition.to_stage
        state.pending = None
        self.store.save(state)
        entry = self._history(transition, outcome, transition.gates)
        return Outcome(Exit.OK, {"ok": True, "transition": entry})

    # --- verbs ---------------------------------------------------------------------------

    def status(self) -> Outcome:
        state = self.state()
        nxt = self._next(state.stage)
        data: dict[str, Any] = {
            "service": self.plan.service,
            "plan": self.plan.path,
            "stage": state.stage,
            "stages": self.stages,
            "updated_at": state.updated_at,
            "pending": None,
            "next_stage": nxt,
            "gates": [],
            "changes": [],
        }
        if state.pending is not None:
            p = state.pending
            done = sum(a.done for a in p.actions)
            data["pending"] = {
                **p.to_dict(),
                "explanation": f"{p.kind} {p.from_stage} → {p.to_stage} stopped after "
                f"{done} of {len(p.actions)} action(s); run `strangler plan {p.kind} "
                f"{self.plan.service}` to finish it"
                + (
                    f" or `strangler plan rollback {self.plan.service}` to undo it"
                    if p.kind == "advance"
                    else ""
                ),
            }
            return Outcome(Exit.INCOMPLETE, data)
        if nxt is not None:
            planned = self._actions("advance", state.stage, nxt, who="", why="")
            gates = self._preflight(planned) + self._gates(nxt, fresh_verify=False)
            data["gates"] = [g.to_dict() for g in gates]
            data["ready"] = all(g.passed for g in gates)
            data["changes"] = [a.description for a in planned]
        return Outcome(Exit.OK, data)

    def advance(
        self, *, to: str | None, dry_run: bool, actor: str, reason: str
    ) -> Outcome:
        state = self.state()
        if to is not None and to not in self.stages:
            raise PlanCommandError(
                f"{self.plan.path}: unknown stage {to!r}; the plan's stages are "
                f"{', '.join(self.stages)}"
            )
        steps: list[dict[str, Any]] = []
        if state.pending is not None:
            pending = state.pending
            if pending.kind != "advance":
                raise PlanCommandError(
                    f"a rollback {pending.from_stage} → {pending.to_stage} is incomplete; "
                    f"run `strangler plan rollback {self.plan.service}` to finish it first",
                    Exit.INCOMPLETE,
                )
            if to is not None and self.stages.index(to) < self.stages.index(
                pending.to_stage
            ):
                raise PlanCommandError(
                    f"an advance to {pending.to_stage!r} is incomplete, past --to {to!r}; "
                    f"finish it with `strangler plan advance {self.plan.service}` or undo "
                    "it with `strangler plan rollback`"
                )
            remaining = [a.description for a in pending.actions if not a.done]
            if dry_run:
                steps.append(
                    {
                        "from": pending.from_stage,
                        "to": pending.to_stage,
                        "resume": True,
                        "changes": remaining,
                    }
                )
                return Outcome(Exit.OK, {"ok": True, "dry_run": True, "steps": steps})
            result = self._execute(state, pending, "completed after an interruption")
            steps.append(result.data)
            if result.code != Exit.OK or to in (None, pending.to_stage):
                return Outcome(result.code, {**result.data, "steps": steps})
        current = state.stage
        target = to or self._next(current)
        if target is None:
            raise PlanCommandError(
                f"{self.plan.service} is already at the last stage {current!r}; "
                "nothing to advance"
            )
        if self.stages.index(target) <= self.stages.index(current):
            raise PlanCommandError(
                f"--to {target!r} is not after the current stage {current!r}; "
                f"use `strangler plan rollback {self.plan.service}` to go back"
            )
        while current != target:
            nxt = self._next(current)
            assert nxt is not None
            planned = self._actions("advance", current, nxt, who=actor, why=reason)
            gates = self._preflight(planned)
            if all(g.passed for g in gates):
                gates += self._gates(nxt, fresh_verify=not dry_run)
            step = {
                "from": current,
                "to": nxt,
                "gates": [g.to_dict() for g in gates],
                "changes": [a.description for a in planned],
            }
            steps.append(step)
            failing = [g for g in gates if not g.passed]
            transition = Transition(
                kind="advance",
                from_stage=current,
                to_stage=nxt,
                actions=planned,
                actor=actor,
                reason=reason,
                started_at=now_iso(),
                gates=[g.to_dict() for g in gates],
            )
            if dry_run:
                if failing:
                    return Outcome(
                        Exit.REFUSED, {"ok": False, "dry_run": True, "steps": steps}
                    )
                current = nxt
                continue
            if failing:
                self._history(transition, "refused", gates)
                return Outcome(
                    Exit.REFUSED,
                    {
                        "ok": False,
                        "refused": f"{current} → {nxt}",
                        "failing": [g.to_dict() for g in failing],
                        "steps": steps,
                    },
                )
            result = self._execute(state, transition, "completed")
            step.update(result.data)
            if result.code != Exit.OK:
                return Outcome(result.code, {**result.data, "steps": steps})
            current = nxt
        return Outcome(
            Exit.OK, {"ok": True, "dry_run": dry_run, "stage": current, "steps": steps}
        )

    def rollback(self, *, dry_run: bool, actor: str, reason: str) -> Outcome:
        state = self.state()
        pending = state.pending
        if pending is not None and pending.kind == "rollback":
            remaining = [a.description for a in pending.actions if not a.done]
            if dry_run:
                return Outcome(
                    Exit.OK,
                    {
                        "ok": True,
                        "dry_run": True,
                        "from": pending.from_stage,
                        "to": pending.to_stage,
                        "resume": True,
                        "changes": remaining,
                    },
                )
            return self._execute(state, pending, "completed after an interruption")
        if pending is not None:
            effective_from, to_stage = pending.to_stage, pending.from_stage
        else:
            effective_from, to_stage = state.stage, self._previous(state.stage)
            if to_stage is None:
                raise PlanCommandError(
                    f"{self.plan.service} is at the first stage {state.stage!r}; "
                    "nothing to roll back"
                )
        planned = self._actions(
            "rollback", effective_from, to_stage, who=actor, why=reason
        )
        gates = (
            self._preflight(planned)
            + self._reverse_drained(effective_from, to_stage)
            + self._legacy_still_current(
                effective_from, pending, fresh_verify=not dry_run
            )
        )
        failing = [g for g in gates if not g.passed]
        transition = Transition(
            kind="rollback",
            from_stage=effective_from,
            to_stage=to_stage,
            actions=planned,
            actor=actor,
            reason=reason,
            started_at=now_iso(),
            gates=[g.to_dict() for g in gates],
        )
        data: dict[str, Any] = {
            "from": effective_from,
            "to": to_stage,
            "undoing_incomplete_advance": pending is not None,
            "gates": [g.to_dict() for g in gates],
            "changes": [a.description for a in planned],
        }
        if failing:
            if not dry_run:
                self._history(transition, "refused", gates)
            return Outcome(
                Exit.REFUSED,
                {
                    **data,
                    "ok": False,
                    "dry_run": dry_run,
                    "failing": [g.to_dict() for g in failing],
                },
            )
        if dry_run:
            return Outcome(Exit.OK, {**data, "ok": True, "dry_run": True})
        if pending is not None:
            self._history(pending, "abandoned", pending.gates, "undone by rollback")
        result = self._execute(state, transition, "completed")
        return Outcome(result.code, {**data, **result.data})
