"""``./scripts/run`` end to end: the local stack on the embedded default (SQLite files in a
scratch ``STRANGLER_VAR_DIR``, events over HTTP, ports from an ephemeral base) starts, the
migration demo walks the vote plan from ``monolith`` to ``owned`` under traffic, and its
verification passes: every accepted vote is in the vote service's database exactly once and
the results read through the router agree with it.

No PostgreSQL or RabbitMQ: this is the path a newcomer takes on a fresh clone.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_SECONDS = 170  # failsafe for a hung stack, not a performance bound
# The embedded default is what runs with none of these set.
UNSET = (
    "DATABASE_URL", "AMQP_URL", "STRANGLER_CONTROL_DATABASE_URL", "STRANGLER_ROUTER_DIR",
    "STRANGLER_PLAN_DIR", "STRANGLER_PORT_BASE", "DJANGO_SETTINGS_MODULE",
    "PROMETHEUS_MULTIPROC_DIR",
)  # fmt: skip

pytestmark = pytest.mark.timeout(RUN_SECONDS + 30)


def free_port_base() -> int:
    """A base whose four stack ports (base, +1, +2, +80) are free, away from 8000-8080."""
    for _ in range(50):
        base = random.randrange(20000, 40000)
        try:
            for port in (base, base + 1, base + 2, base + 80):
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port base found")


def run_stack(var: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["STRANGLER_VAR_DIR"] = str(var)
    log = var.parent / "stack.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts/stack.py"), "up", *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=RUN_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            code = -1
    return code, log.read_text(errors="replace")


def test_run_starts_the_stack_and_the_demo_takes_the_vote_plan_to_owned(tmp_path):
    var = tmp_path / "var"
    base = free_port_base()

    code, output = run_stack(
        var, "--fast", "--exit-after-demo", "--port-base", str(base)
    )

    assert code == 0, output[-6000:]
    assert "verification: PASSED (stage owned)" in output, output[-6000:]
    assert json.loads((var / "plan" / "vote.json").read_text())["stage"] == "owned"
    for command in ("strangler plan advance vote", "strangler sync backfill vote",
                    "strangler sync verify vote", "strangler route list"):  # fmt: skip
        assert f"$ {command}" in output
    assert f"127.0.0.1:{base + 80}" in output

    # A second start on the same var/ keeps serving and skips the demo with a hint.
    code, output = run_stack(var, "--exit-after-demo", "--port-base", str(base))
    assert code == 0, output[-3000:]
    assert "skipping the migration demo" in output
    assert "--reset" in output and "at `owned`" in output
