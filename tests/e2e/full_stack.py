"""The whole reference migration as processes, for the plan and sync end-to-end tests.

The monolith, the vote service and the choice service under gunicorn on scratch PostgreSQL
databases (``h_e2e_*``) seeded with ``seed_polls``; the monolith's and the vote service's
relays and all three consumers on RabbitMQ; the real router (``python -m router``) in front,
with a config store whose backends are the ephemeral URLs, bootstrapped all-to-monolith; a
scratch control database for plan state; and test copies of the plans whose sample-count
gates are smaller (the thresholds on rates and differences are the shipped ones).

``Load`` runs ``scripts/traffic.py``'s workers in threads through the router, so the tests get
the same tally of every vote accepted with a 201 and every retraction answered 204.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from tests.e2e import stack as s

ROUTER_TOKEN = "e2e-router-token"
OPERATOR_TOKEN = "e2e-operator-token"
PASSWORD = "e2e-password"
STRANGLER = [
    sys.executable,
    "-c",
    "import sys; from strangler.cli import main; sys.exit(main())",
]


def _traffic():
    spec = importlib.util.spec_from_file_location(
        "strangler_traffic", s.ROOT / "scripts" / "traffic.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


traffic = _traffic()


def plan_copies(directory: Path, overrides: dict[str, dict[str, dict]]) -> Path:
    """Copies of ``migrations_plan/*.yaml`` with some gate values replaced per stage."""
    directory.mkdir(parents=True, exist_ok=True)
    for service in ("vote", "choice"):
        plan = yaml.safe_load(
            (s.ROOT / "migrations_plan" / f"{service}.yaml").read_text()
        )
        for stage in plan["stages"]:
            stage.setdefault("gates", {}).update(
                overrides.get(service, {}).get(stage["name"], {})
            )
            if not stage["gates"]:
                del stage["gates"]
        (directory / f"{service}.yaml").write_text(
            yaml.safe_dump(plan, sort_keys=False)
        )
    return directory


@dataclass
class FullStack:
    work: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    deployables: dict[str, s.Deployable] = field(default_factory=dict)
    procs: dict[str, s.Proc] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    plan_env: dict[str, str] = field(default_factory=dict)
    users: list[int] = field(default_factory=list)
    router_url: str = ""
    # The services' Unix sockets, which the router uses as deployed (scripts/stack.py);
    # in a short directory of its own, for the 107-byte limit on socket paths.
    sockets: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="h_e2e_sock_"))
    )

    @property
    def control(self) -> str:
        return f"h_e2e_control_{self.suffix}"

    @property
    def monolith(self) -> s.Deployable:
        return self.deployables["monolith"]

    @property
    def vote(self) -> s.Deployable:
        return self.deployables["vote"]

    @property
    def choice(self) -> s.Deployable:
        return self.deployables["choice"]

    def logs(self) -> str:
        return "\n".join(proc.tail() for proc in self.procs.values())

    # --- lifecycle ---------------------------------------------------------------------

    def create(self, *, seed: list[str], plan_dir: Path | None = None) -> None:
        """Databases migrated and seeded (``seed_polls`` arguments), queues declared."""
        amqp = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/h_e2e")
        base_env = {
            **os.environ,
            "PYTHONPATH": str(s.ROOT),
            "STRANGLER_DEV_DEFAULTS": "1",
            "LOG_LEVEL": "WARNING",
            "STRANGLER_ROUTER_TOKEN": ROUTER_TOKEN,
            "AMQP_URL": amqp,
        }
        for name in ("monolith", "vote", "choice"):
            self.queues[name] = f"h_e2e.{self.suffix}.{name}"
            self.deployables[name] = s.Deployable(
                name,
                f"h_e2e_{name}_{self.suffix}",
                {**base_env, "STRANGLER_CONSUMER_QUEUE": self.queues[name]},
            )
        for name in (*(d.database for d in self.deployables.values()), self.control):
            s.create_database(name)
        migrations = [d.migrate() for d in self.deployables.values()]
        for process in migrations:
            output = process.communicate(timeout=300)[0]
            assert process.returncode == 0, output.decode(errors="replace")
        subprocess.run(
            [sys.executable, str(s.ROOT / "monolith/manage.py"), "seed_polls",
             "--password", PASSWORD, *seed],
            env=self.monolith.env, cwd=s.ROOT, check=True, capture_output=True,
        )  # fmt: skip
        self.users = [
            row[0]
            for row in s.sql(
                self.monolith.database, "SELECT id FROM auth_user ORDER BY id"
            )
        ]
        for deployable in self.deployables.values():
            deployable.run("consume", "--service", deployable.name, "--declare-only")
        urls = {n: s.database_url(d.database) for n, d in self.deployables.items()}
        self.plan_env = {
            **base_env,
            "LEGACY_DATABASE_URL": urls["monolith"],
            "MONOLITH_DATABASE_URL": urls["monolith"],
            "VOTE_DATABASE_URL": urls["vote"],
            "CHOICE_DATABASE_URL": urls["choice"],
            "STRANGLER_CONTROL_DATABASE_URL": s.database_url(self.control),
            "STRANGLER_ROUTER_DIR": str(self.work / "router"),
            "STRANGLER_PLAN_DIR": str(plan_dir or s.ROOT / "migrations_plan"),
            "STRANGLER_OPERATOR_TOKEN": OPERATOR_TOKEN,
            "STRANGLER_ACTOR": "e2e",
        }

    def start(self, name: str, deployable: s.Deployable, verb: list[str]) -> None:
        self.procs[name] = s.strangler_proc(
            deployable, verb, deployable.env["AMQP_URL"], self.work / f"{name}.log"
        )

    def serve(self, *, services: bool = True, router: bool = True) -> None:
        """gunicorn for the services (first: the monolith composes results from them), the
        monolith, relays and consumers, then the router."""
        names = ("vote", "choice", "monolith") if services else ("monolith",)
        for name in names:
            deployable = self.deployables[name]
            if name == "monolith" and services:
                deployable.env["VOTE_SERVICE_URL"] = self.urls["vote"]
                deployable.env["CHOICE_SERVICE_URL"] = self.urls["choice"]
            self.procs[f"gunicorn-{name}"], self.urls[name] = s.gunicorn(
                deployable,
                self.work / f"gunicorn-{name}.log",
                self.sockets / f"{name}.sock",
            )
        self.start("relay-monolith", self.monolith, ["relay", "--producer", "monolith"])
        self.start("consume-vote", self.vote, ["consume", "--service", "vote"])
        if services:
            self.start("relay-vote", self.vote, ["relay", "--producer", "vote"])
            self.start(
                "consume-choice", self.choice, ["consume", "--service", "choice"]
            )
            self.start(
                "consume-monolith", self.monolith, ["consume", "--service", "monolith"]
            )
        if router:
            self._router()

    def _router(self) -> None:
        config = self.work / "router-bootstrap.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "backends": {
                        name: {
                            "url": self.urls[name],
                            "socket": str(self.sockets / f"{name}.sock"),
                            "dry_run": True,
                        }
                        for name in ("monolith", "vote", "choice")
                    },
                    "routes": [
                        {
                            "name": "default",
                            "methods": ["*"],
                            "path": "/**",
                            "to": "monolith",
                        },
                    ],
                }
            )
        )
        port = s.free_port()
        env = {
            **self.plan_env,
            "ROUTER_PORT": str(port),
            "ROUTER_ACCESS_LOG": "0",
            "ROUTER_POLL_SECONDS": "0.2",
        }
        self.procs["router"] = s.Proc(
            [sys.executable, "-m", "router", "--bootstrap", str(config)],
            env,
            self.work / "router.log",
        )
        self.router_url = f"http://127.0.0.1:{port}"
        self.plan_env["STRANGLER_ROUTER_URL"] = self.router_url
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                got = requests.get(f"{self.router_url}/_strangler/healthz", timeout=2)
                if got.status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"router did not start\n{self.logs()}")
            time.sleep(0.2)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        if self.queues:
            amqp = self.monolith.env["AMQP_URL"]
            with contextlib.suppress(Exception):
                s.delete_queues(
                    amqp,
                    *self.queues.values(),
                    *(f"{q}.dlq" for q in self.queues.values()),
                )
        for name in (*(d.database for d in self.deployables.values()), self.control):
            s.drop_database(name)
        shutil.rmtree(self.sockets, ignore_errors=True)

    # --- commands ----------------------------------------------------------------------

    def strangler(
        self, *args: str, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        """The real ``strangler`` CLI with the plan engine's environment."""
        return subprocess.run(
            [*STRANGLER, *args], env=self.plan_env, cwd=s.ROOT, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip

    def plan(self, *args: str) -> tuple[int, dict]:
        done = self.strangler("plan", *args, "--json")
        assert done.stdout, done.stderr
        return done.returncode, json.loads(done.stdout)

    def stage(self, service: str) -> str:
        code, status = self.plan("status", service)
        assert code == 0, status
        return status["stage"]

    # --- observations ------------------------------------------------------------------

    def modes(self, deployable: s.Deployable) -> dict[str, str]:
        return dict(
            s.sql(
                deployable.database,
                "SELECT entity, mode FROM strangler_dualwrite_entitymode",
            )
        )

    def router_version(self) -> int:
        from strangler.routing.store import RouteStore

        return RouteStore(self.plan_env["STRANGLER_ROUTER_DIR"]).current_version()

    def forward_drained(self) -> bool:
        return s.unsent(self.monolith.database) == 0 and s.votes(
            self.monolith.database, "polls_vote"
        ) == s.votes(self.vote.database, "votes_vote")

    def reverse_drained(self) -> bool:
        return s.unsent(self.vote.database) == 0 and s.votes(
            self.monolith.database, "polls_vote"
        ) == s.votes(self.vote.database, "votes_vote")


class Load:
    """``scripts/traffic.py`` workers in threads through ``base``, until ``stop()``."""

    def __init__(
        self,
        base: str,
        tokens: list[str],
        *,
        workers: int = 4,
        write_ratio: float = 0.3,
        retract_ratio: float = 0.1,
        seed: int = 1,
    ) -> None:
        self.args = argparse.Namespace(
            base=base,
            votes=0,
            write_ratio=write_ratio,
            retract_ratio=retract_ratio,
            retract_after=traffic.parser().get_default("retract_after"),
        )
        self.tokens = tokens
        self.pairs = traffic.choice_ids(base)
        self.tally = traffic.Tally()
        self.workers = workers
        self.seed = seed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Load:
        self._stop.clear()
        self.seed += self.workers
        self._threads = [
            threading.Thread(
                target=traffic.worker,
                args=(
                    self.args,
                    self.tokens,
                    self.pairs,
                    self.tally,
                    self._stop,
                    self.seed + i,
                ),
                daemon=True,
            )
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> traffic.Tally:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self.tally

    def count(self, kind: str) -> int:
        with self.tally.lock:
            return sum(
                n for key, n in self.tally.statuses.items() if key.startswith(kind)
            )
