#!/usr/bin/env python
"""The migration demo: walk the vote plan from ``monolith`` to ``owned`` on the running local
stack, with the commands a team would type, while bounded traffic goes through the router.

Runs against the embedded default that ``scripts/stack.py up`` serves (one SQLite file per
deployable under ``$STRANGLER_VAR_DIR``, events over HTTP, the router store in
``var/router``); ``./scripts/run`` starts it after the stack is healthy. Every step prints the
command, why it is run, its output, and what changed in routes and dual-write modes. At the
end it checks that every vote accepted during the demo is in the vote service's database
exactly once and that the results read through the router agree with the owning database.

The shipped gate thresholds are for production traffic; the demo walks a copy of the plan
(``var/demo/plans/vote.yaml``) that asks for fewer samples and says so on screen. It never
deletes anything: to start again, stop the stack and ``rm -rf var/`` (or
``./scripts/run --reset``).

    python scripts/demo.py [--router URL] [--stop-at STAGE] [--fast]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import requests
import traffic
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "migrations_plan" / "vote.yaml"
STAGES = ["monolith", "dual-write", "shadow", "canary", "reads", "writes", "owned"]
# Gates that only need more traffic: the demo waits for them instead of failing.
SAMPLE_GATES = {"parity_min_samples", "canary_min_requests"}
GATE_WAIT_SECONDS = 240  # failsafe when the traffic cannot reach the sample counts
WIDTH = 92


@dataclass(frozen=True)
class Pace:
    """How much traffic the demo waits for: samples the gates ask, load, pauses."""

    parity_samples: int
    canary_requests: int
    workers: int
    pause: float


NORMAL = Pace(parity_samples=1000, canary_requests=100, workers=4, pause=3)
FAST = Pace(parity_samples=150, canary_requests=20, workers=3, pause=0.5)
# Every setting the demo plan changes, with why (printed on screen).
CANARY_PERCENT = 25
PARITY_MIN_RATE = 0.99
WHY = {
    "parity_min_samples": "fewer samples, so the demo does not wait for production volume",
    "canary_min_requests": "fewer samples, so the demo does not wait for production volume",
    "canary_percent": "with 50 users, 5 % would be two or three people",
    "parity_min_rate": "with a few thousand samples, retractions of votes cast a few "
    "milliseconds earlier weigh more than in production: their `vote.created` event has "
    "not reached the vote service yet, so the dry run answers `not found`. The parity "
    "report at the canary stage shows them",
}

EXPLAIN = {
    "dual-write": """\
        dual-write: the monolith still serves every request, but from now on each vote it
        writes also goes into its outbox (mode `forward`), and the relay delivers the event to
        the vote service, which applies it (mode `reverse`: only its consumer may write
        votes). New votes now reach both databases; the history does not yet.""",
    "backfill": """\
        Copy the history: every vote (and the choice→question references the vote service
        needs) in key order, in batches, resumable from its watermark. Rows that events
        already wrote are left alone, so the copy can run while votes are being cast.""",
    "verify": """\
        Prove it: compare both databases chunk by chunk. Differences caused by events still
        in flight are re-read before being reported. The gate into `shadow` needs a clean,
        recent verify.""",
    "shadow": """\
        shadow: the router still answers every /api/votes/ request from the monolith, and
        also sends it to the vote service and compares the two answers (writes go as
        rolled-back dry runs). The service's id sequence was moved past the monolith's ids
        first so dry-run inserts never collide. Users see no difference.""",
    "canary": """\
        canary: the shadow comparison held, so now a sticky share of users (by user id)
        gets its vote reads from the vote service; everyone else still reads the monolith.
        The gate into `reads` compares the service's error rate with the monolith's.""",
    "reads": """\
        reads: every vote read is served by the vote service (the monolith is the fallback
        if it fails). Writes still go to the monolith and flow forward as events.""",
    "writes": """\
        writes: the flip. The monolith stops publishing and becomes the follower (mode
        `reverse`); the vote service takes the writes and publishes them (mode `forward`)
        so the monolith's legacy table stays current, and a rollback loses nothing. The
        gate drained the forward events and ran a fresh verify first.""",
    "owned": """\
        owned: the reverse events have drained; the vote service owns votes. Its outbox is
        switched off and the monolith's polls_vote is frozen by a trigger: any code that
        still writes it gets a clear error instead of silently forking the data.""",
}


def say(text: str = "") -> None:
    print(text, flush=True)


def banner(title: str) -> None:
    say(f"\n{'=' * WIDTH}\n  {title}\n{'=' * WIDTH}")


def explain(text: str) -> None:
    say(textwrap.fill(" ".join(textwrap.dedent(text).split()), WIDTH))


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pace = FAST if args.fast else NORMAL
        self.var = Path(os.environ.get("STRANGLER_VAR_DIR") or ROOT / "var")
        self.monolith_db = self.var / "monolith.sqlite3"
        self.vote_db = self.var / "vote.sqlite3"
        self.router_dir = Path(
            os.environ.get("STRANGLER_ROUTER_DIR") or self.var / "router"
        )
        self.plan_dir = self.var / "demo" / "plans"
        self.env = self._env()
        self.tally = traffic.Tally()
        self.stop_traffic = threading.Event()
        self.threads: list[threading.Thread] = []

    # --- setup ------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "AMQP_URL", "STRANGLER_CONTROL_DATABASE_URL"}
        }
        env.update(self.exports())
        env["STRANGLER_ACTOR"] = "demo"  # the plan history says who moved it
        return env

    def exports(self) -> dict[str, str]:
        """What ``strangler plan`` and ``strangler sync`` need on the embedded default."""
        return {
            "STRANGLER_VAR_DIR": str(self.var),
            "LEGACY_DATABASE_URL": f"sqlite:///{self.monolith_db}",
            "MONOLITH_DATABASE_URL": f"sqlite:///{self.monolith_db}",
            "VOTE_DATABASE_URL": f"sqlite:///{self.vote_db}",
            "STRANGLER_ROUTER_DIR": str(self.router_dir),
            "STRANGLER_ROUTER_URL": self.args.router,
            "STRANGLER_PLAN_DIR": str(self.plan_dir),
        }

    def write_demo_plan(self) -> dict[str, dict[str, object]]:
        """The shipped plan with the sample counts the demo's traffic reaches in seconds."""
        plan = yaml.safe_load(PLAN.read_text())
        changed: dict[str, dict[str, object]] = {}
        lower = {
            "canary": {
                "parity_min_rate": PARITY_MIN_RATE,
                "parity_min_samples": self.pace.parity_samples,
                "canary_percent": CANARY_PERCENT,
            },
            "reads": {
                "parity_min_rate": PARITY_MIN_RATE,
                "parity_min_samples": self.pace.parity_samples,
                "canary_min_requests": self.pace.canary_requests,
            },
        }
        for stage in plan["stages"]:
            for key, value in lower.get(stage["name"], {}).items():
                if key in stage.get("gates", {}) and stage["gates"][key] != value:
                    changed.setdefault(stage["name"], {})[key] = (
                        stage["gates"][key],
                        value,
                    )
                    stage["gates"][key] = value
        self.plan_dir.mkdir(parents=True, exist_ok=True)
        header = (
            "# The demo's copy of migrations_plan/vote.yaml, written by scripts/demo.py: the\n"
            "# parity and canary gates are set for the demo's small, bursty traffic.\n"
        )
        (self.plan_dir / "vote.yaml").write_text(
            header + yaml.safe_dump(plan, sort_keys=False)
        )
        lines = [f"export {k}={v}" for k, v in self.exports().items()]
        lines.append(f"export PATH={ROOT / '.venv' / 'bin'}:$PATH")
        (self.var / "demo" / "env.sh").write_text(
            "# The migration demo's environment: `source` it to run strangler commands\n"
            + "\n".join(lines)
            + "\n"
        )
        return changed

    # --- commands ---------------------------------------------------------------------

    def run(self, *argv: str, check: bool = True, echo: bool = True) -> int:
        """Run ``strangler ARGV``, printed as typed and its output indented."""
        if echo:
            say(f"\n$ strangler {' '.join(argv)}")
        proc = subprocess.run(
            [sys.executable, "-m", "strangler", *argv],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if echo:
            for line in proc.stdout.rstrip().splitlines():
                say(f"    {line}")
        if check and proc.returncode != 0:
            if not echo:
                say(proc.stdout)
            raise SystemExit(
                f"demo: `strangler {' '.join(argv)}` exited {proc.returncode}"
            )
        return proc.returncode

    def status_json(self) -> dict:
        proc = subprocess.run(
            [sys.executable, "-m", "strangler", "plan", "status", "vote", "--json"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode not in (0,):
            raise SystemExit(
                f"demo: `strangler plan status vote` exited {proc.returncode}:\n"
                f"{proc.stdout}{proc.stderr}"
            )
        return json.loads(proc.stdout)

    def stage(self) -> str:
        return self.status_json()["stage"]

    # --- what changed -----------------------------------------------------------------

    def snapshot(self) -> dict[str, str]:
        from strangler.routing.store import RouteStore

        live = RouteStore(self.router_dir).live()
        seen = {"router config": f"version {live.version}"}
        for route in live.config.routes:
            if "votes" not in route.path:
                continue
            extra = []
            if route.shadow is not None:
                extra.append(f"shadow {route.shadow.to}")
            if route.canary is not None:
                extra.append(f"canary {route.canary.percent:g}% → {route.canary.to}")
            if route.fallback:
                extra.append(f"fallback {route.fallback}")
            methods = ",".join(sorted(route.methods))
            tail = f" ({', '.join(extra)})" if extra else ""
            seen[f"route {methods} {route.path}"] = f"→ {route.to}{tail}"
        for label, db in (
            ("monolith", self.monolith_db),
            ("vote service", self.vote_db),
        ):
            seen[f"mode of `vote` in the {label} database"] = mode_of(db, "vote")
        seen["monolith polls_vote"] = (
            "frozen (read-only)" if frozen(self.monolith_db) else "writable"
        )
        return seen

    def show_changes(self, before: dict[str, str]) -> None:
        after = self.snapshot()
        say("\nWhat changed:")
        rows = [
            (key, before.get(key, "—"), value)
            for key, value in after.items()
            if before.get(key) != value
        ]
        rows += [(k, v, "—") for k, v in before.items() if k not in after]
        if not rows:
            say("    nothing")
        for key, old, new in rows:
            say(f"    {key}: {old}  ⇒  {new}")

    # --- traffic ----------------------------------------------------------------------

    def start_traffic(self) -> None:
        args = traffic.parser().parse_args(
            ["--base", self.args.router, "--password", self.args.password,
             "--users", str(self.args.users), "--workers", str(self.pace.workers),
             "--write-ratio", "0.1", "--retract-ratio", "0.03",
             "--seed", str(int(time.time()))]
        )  # fmt: skip
        tokens = [
            traffic.login(args.base, f"user{n:04d}", args.password)
            for n in range(1, args.users + 1)
        ]
        pairs = traffic.choice_ids(args.base)
        self.threads = [
            threading.Thread(
                target=traffic.worker,
                args=(
                    args,
                    tokens,
                    pairs,
                    self.tally,
                    self.stop_traffic,
                    args.seed + i,
                ),
                daemon=True,
            )
            for i in range(args.workers)
        ]
        for thread in self.threads:
            thread.start()

    def halt_traffic(self) -> None:
        self.stop_traffic.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def traffic_line(self) -> str:
        with self.tally.lock:
            total = sum(self.tally.statuses.values())
            accepted, retracted = len(self.tally.accepted), len(self.tally.retracted)
        return (
            f"traffic so far: {total} requests, {accepted} votes accepted, "
            f"{retracted} retracted"
        )

    # --- the walk ---------------------------------------------------------------------

    def wait_for_gates(self) -> None:
        """Let the traffic run until the next stage's gates hold (only sample counts may
        still be short), printing the sample counts as they grow."""
        deadline = time.monotonic() + GATE_WAIT_SECONDS
        last = ""
        while True:
            status = self.status_json()
            gates = status["gates"]
            if status.get("ready"):
                return
            line = ", ".join(
                f"{g['name']} {g['value']}/{g['threshold']}"
                if g["name"] in SAMPLE_GATES
                else f"{g['name']} {g['value']} (needs {g['threshold']})"
                for g in gates
                if not g["passed"]
            )
            if line != last:
                say(f"    waiting for traffic: {line}  ({self.traffic_line()})")
                last = line
            if time.monotonic() > deadline:
                self.run("plan", "status", "vote", check=False)
                raise SystemExit(
                    f"demo: the gates into {status['next_stage']} did not hold within "
                    f"{GATE_WAIT_SECONDS} s"
                )
            time.sleep(2)

    def advance(self, to: str) -> None:
        banner(f"{self.stage()} → {to}")
        self.wait_for_gates()
        before = self.snapshot()
        self.run("plan", "status", "vote")
        for attempt in range(3):
            code = self.run(
                "plan", "advance", "vote", "--reason", f"demo: enter {to}", check=False
            )
            if code == 0:
                break
            if code != 1 or attempt == 2:
                raise SystemExit(f"demo: `strangler plan advance vote` exited {code}")
            explain(
                """Refused: a gate that held a moment ago no longer does (the rates move
                with the traffic). Nothing changed; the demo lets more traffic run and
                tries again, as an operator would."""
            )
            self.wait_for_gates()
        explain(EXPLAIN[to])
        self.show_changes(before)
        if to in {"canary", "writes"}:
            self.run("route", "list")
        if to == "canary":
            explain(
                """Every comparison the router made is also in its shadow log; the parity
                report groups the mismatches by endpoint and field. Here they are timing:
                a retraction shadowed before the vote's own event reached the service.
                Reads that raced an event were compared again two seconds later and count
                as converged."""
            )
            self.run(
                "parity", "report", "--shadow", str(self.router_dir / "shadow.jsonl"),
                "--rules", str(self.plan_dir / "vote.yaml"), "--max-mismatch-rate",
                "0.05", check=False,
            )  # fmt: skip
        say(f"\n    {self.traffic_line()}")
        time.sleep(self.pace.pause)

    def sync(self) -> None:
        banner("copy the history, then prove both databases agree")
        explain(EXPLAIN["backfill"])
        self.run("sync", "backfill", "vote")
        explain(EXPLAIN["verify"])
        report = self.var / "demo" / "verify-report.json"
        code = self.run("sync", "verify", "vote", "--report", str(report), check=False)
        if code not in (0, 1):
            raise SystemExit(f"demo: `strangler sync verify vote` exited {code}")
        if code == 1:
            explain(
                """Verify found differences that were not writes in flight (for example a
                vote retracted while its batch was being copied). Reconcile re-reads each
                reported row on both sides and repairs the copy; the monolith stays the
                source of truth. First without --apply to see the plan, then for real."""
            )
            self.run("sync", "reconcile", "vote", "--from", str(report))
            self.run("sync", "reconcile", "vote", "--from", str(report), "--apply")
            self.run("sync", "verify", "vote")

    def walk(self) -> str:
        stop_at = self.args.stop_at
        at = self.stage()
        for target in STAGES[STAGES.index(at) + 1 : STAGES.index(stop_at) + 1]:
            self.advance(target)
            if target == "dual-write":
                self.sync()
        return self.stage()

    def intro(self, changed: dict[str, dict[str, object]]) -> None:
        banner("the migration demo: extracting the vote service, stage by stage")
        explain(
            """The stack is running on the embedded default: one SQLite database per
            deployable under var/, events over HTTP, the router in front on
            """
            + self.args.router
            + """. While bounded traffic logs in, casts, retracts and reads votes
            through the router, the demo moves the vote plan from `monolith` to `"""
            + self.args.stop_at
            + """` with the strangler CLI, and shows what each step changes."""
        )
        say(
            f"\nThe commands run with this environment (`source {self.var}/demo/env.sh` "
            "to type them yourself):"
        )
        for key, value in self.exports().items():
            say(f"    {key}={value}")
        say(
            "\nDemo plan: the shipped gates are for production traffic; this demo walks "
            f"{self.plan_dir / 'vote.yaml'},\na copy with these changes:"
        )
        by_key: dict[str, list[str]] = {}
        for stage, keys in changed.items():
            for key, (old, new) in keys.items():
                by_key.setdefault(f"{key} {old} → {new}", []).append(stage)
        for change, stages in by_key.items():
            key = change.split()[0]
            say(
                textwrap.fill(
                    f"{change} (into {', '.join(stages)}): {WHY[key]}.",
                    WIDTH,
                    initial_indent="  - ",
                    subsequent_indent="    ",
                )
            )
        say("  Every other gate (backfill, verify, event lags) is the shipped one.")

    # --- verification -----------------------------------------------------------------

    def drained(self, timeout: float = 60) -> None:
        """Wait until no event is waiting in either outbox."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if unsent(self.monolith_db) == 0 and unsent(self.vote_db) == 0:
                return
            time.sleep(0.5)
        raise SystemExit(f"demo: events still unsent after {timeout:.0f} s")

    def verify(self, stage: str) -> bool:
        banner("verification")
        self.halt_traffic()
        self.drained()
        owner = self.vote_db if stage in {"writes", "owned"} else self.monolith_db
        table = "votes_vote" if owner == self.vote_db else "polls_vote"
        kept = self.tally.accepted - self.tally.retracted
        say(f"{self.traffic_line()}.")
        for key, count in sorted(self.tally.statuses.items()):
            say(f"    {count:6d}  {key}")
        ok = True
        checks = [(owner, table, "owning database")]
        if stage != "monolith" and owner != self.vote_db:
            checks.append((self.vote_db, "votes_vote", "vote service's copy"))
        for db, tbl, label in checks:
            present = count_ids(db, tbl, kept)
            resurrected = count_ids(db, tbl, self.tally.retracted)
            missing = len(kept) - sum(present.values())
            twice = sum(1 for n in present.values() if n > 1)
            passed = missing == 0 and twice == 0 and not resurrected
            ok &= passed
            say(
                f"\n[{'pass' if passed else 'FAIL'}] {db.name} {tbl} ({label}): "
                f"{len(kept)} accepted and not retracted votes, {sum(present.values())} "
                f"present, {missing} missing, {twice} more than once; "
                f"{sum(resurrected.values())} of {len(self.tally.retracted)} "
                "retracted votes still there"
            )
        mismatched = self.results_agree(owner, table)
        ok &= not mismatched
        if stage == "owned":
            say(
                "\n[info] the monolith's polls_vote is frozen: "
                + ("yes" if frozen(self.monolith_db) else "NO")
            )
            ok &= frozen(self.monolith_db)
        say(f"\nverification: {'PASSED' if ok else 'FAILED'} (stage {stage})")
        return ok

    def results_agree(self, owner: Path, table: str) -> list[int]:
        """GET /api/questions/{id}/results/ through the router vs counts in ``owner``."""
        with closing(sqlite3.connect(owner)) as conn:
            counts: dict[int, dict[int, int]] = {}
            for question, choice, n in conn.execute(
                f"SELECT question_id, choice_id, count(*) FROM {table} "  # noqa: S608
                "GROUP BY question_id, choice_id"
            ):
                counts.setdefault(question, {})[choice] = n
        with closing(sqlite3.connect(self.monolith_db)) as conn:
            questions = [
                row[0] for row in conn.execute("SELECT id FROM polls_question")
            ]
        mismatched = []
        for question in questions:
            body = requests.get(
                f"{self.args.router}/api/questions/{question}/results/", timeout=10
            ).json()
            served = {c["id"]: c["votes"] for c in body["choices"] if c["votes"]}
            if served != counts.get(question, {}):
                mismatched.append(question)
        say(
            f"\n[{'pass' if not mismatched else 'FAIL'}] results of {len(questions)} "
            f"questions read through the router agree with {owner.name} {table}"
            + (f"; differ for questions {mismatched}" if mismatched else "")
        )
        return mismatched


# --- small SQLite readers -----------------------------------------------------------------


def query(db: Path, sql: str, *params: object) -> list[tuple]:
    with closing(sqlite3.connect(db, timeout=20)) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []


def mode_of(db: Path, entity: str) -> str:
    rows = query(
        db, "SELECT mode FROM strangler_dualwrite_entitymode WHERE entity = ?", entity
    )
    return rows[0][0] if rows else "off"


def frozen(db: Path) -> bool:
    return bool(
        query(
            db,
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'polls_vote'"
            " AND name LIKE 'strangler_frozen%'",
        )
    )


def unsent(db: Path) -> int:
    rows = query(
        db, "SELECT count(*) FROM strangler_dualwrite_outboxevent WHERE sent_at IS NULL"
    )
    return rows[0][0] if rows else 0


def count_ids(db: Path, table: str, ids: set[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    chunk = sorted(ids)
    for start in range(0, len(chunk), 500):
        part = chunk[start : start + 500]
        marks = ",".join("?" * len(part))
        for vote_id, n in query(
            db,
            f"SELECT id, count(*) FROM {table} WHERE id IN ({marks}) GROUP BY id",  # noqa: S608
            *part,
        ):
            found[vote_id] = n
    return found


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--router",
        default=os.environ.get("STRANGLER_ROUTER_URL", "http://127.0.0.1:8080"),
        help="the router's base URL (default $STRANGLER_ROUTER_URL or :8080)",
    )
    p.add_argument(
        "--stop-at",
        choices=STAGES,
        default="owned",
        metavar="STAGE",
        help=f"stop once the plan is at STAGE ({', '.join(STAGES)}; default owned)",
    )
    p.add_argument(
        "--fast", action="store_true", help="wait for fewer samples, shorter pauses"
    )
    p.add_argument("--password", default="demo-password", help="the seeded users'")
    p.add_argument(
        "--users", type=int, default=50, help="traffic logs in as user0001..userNNNN"
    )
    return p


def main() -> int:
    args = parser().parse_args()
    demo = Demo(args)
    changed = demo.write_demo_plan()
    at = demo.stage()
    if STAGES.index(at) > STAGES.index(args.stop_at):
        raise SystemExit(
            f"demo: the vote plan is already at {at!r}, past --stop-at {args.stop_at}; "
            "stop the stack and rm -rf var/ to start from the monolith"
        )
    demo.intro(changed)
    demo.start_traffic()
    try:
        banner("where we start")
        explain(
            "Every /api/votes/ request is answered by the monolith; the vote service's "
            "database is empty and no events flow."
        )
        demo.run("plan", "status", "vote")
        demo.run("route", "list")
        stage = demo.walk()
    finally:
        demo.halt_traffic()
    ok = demo.verify(stage)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
