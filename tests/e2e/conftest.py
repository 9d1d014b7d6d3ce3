"""One running stack per module: the monolith and the vote service under gunicorn, each on its
own scratch database (the choice service's database too), the monolith's relay and the vote
and choice services' consumers as ``strangler`` subprocesses, all RabbitMQ links through a
``TcpProxy``. Modes are the ``dual-write`` stage's: the monolith publishes votes, choices and
questions (``forward``), the services hold them in ``reverse`` (only their consumers write).

Needs DATABASE_URL and AMQP_URL (vhost ``h_e2e``: ``rabbitmqctl add_vhost h_e2e`` and
``set_permissions -p h_e2e guest '.*' '.*' '.*'``); databases and queues are removed after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.e2e import stack as s
from tests.integration.events.proxy import TcpProxy

# 4 questions x USERS votes in the kill test: 2,000, or 6,000 with STRANGLER_LONG=1.
USERS = 1500 if os.environ.get("STRANGLER_LONG") == "1" else 500
QUESTIONS = 8


@dataclass
class Stack:
    monolith: s.Deployable
    vote: s.Deployable
    choice: s.Deployable
    amqp_url: str
    proxied_amqp_url: str
    proxy: TcpProxy
    queues: dict[str, str]
    logdir: Path
    procs: dict[str, s.Proc] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    users: list[int] = field(default_factory=list)
    choices: dict[int, list[int]] = field(default_factory=dict)
    _tokens: dict[int, str] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)

    def start(self, name: str, deployable: s.Deployable, verb: list[str]) -> s.Proc:
        self.procs[name] = s.strangler_proc(
            deployable, verb, self.proxied_amqp_url, self.logdir / f"{name}.log"
        )
        return self.procs[name]

    def logs(self) -> str:
        return "\n".join(proc.tail() for proc in self.procs.values())

    def token(self, user_id: int) -> str:
        if user_id not in self._tokens:
            from strangler.auth.tokens import issue_token

            self._tokens[user_id] = issue_token(user_id)["access"]
        return self._tokens[user_id]

    def call(
        self, method: str, where: str, path: str, user_id: int, body: dict | None = None
    ) -> requests.Response:
        """An API request to ``where`` (monolith or vote) as ``user_id``, keep-alive."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session.request(
            method,
            f"{self.urls[where]}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token(user_id)}"},
            timeout=30,
        )

    def forward_drained(self) -> bool:
        return s.unsent(self.monolith.database) == 0 and s.votes(
            self.monolith.database, "polls_vote"
        ) == s.votes(self.vote.database, "votes_vote")


def _amqp_urls() -> tuple[str, str, TcpProxy]:
    base = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/h_e2e")
    parts = urlsplit(base)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    netloc = parts.netloc.rsplit("@", 1)
    creds = f"{netloc[0]}@" if len(netloc) == 2 else ""
    proxied = urlunsplit(parts._replace(netloc=f"{creds}127.0.0.1:{proxy.port}"))
    return base, proxied, proxy


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    suffix = uuid.uuid4().hex[:8]
    amqp_url, proxied, proxy = _amqp_urls()
    queues = {name: f"h_e2e.{suffix}.{name}" for name in ("monolith", "vote", "choice")}
    base_env = {
        **os.environ,
        "PYTHONPATH": str(s.ROOT),
        "STRANGLER_DEV_DEFAULTS": "1",
        "LOG_LEVEL": "WARNING",
    }
    deployables = {
        name: s.Deployable(
            name,
            f"h_e2e_{name}_{suffix}",
            {**base_env, "STRANGLER_CONSUMER_QUEUE": queues[name]},
        )
        for name in ("monolith", "vote", "choice")
    }
    stack = Stack(
        **deployables,
        amqp_url=amqp_url,
        proxied_amqp_url=proxied,
        proxy=proxy,
        queues=queues,
        logdir=tmp_path_factory.mktemp("e2e"),
    )
    try:
        for deployable in deployables.values():
            s.create_database(deployable.database)
        migrations = [d.migrate() for d in deployables.values()]
        for process in migrations:
            output = process.communicate(timeout=300)[0]
            assert process.returncode == 0, output.decode(errors="replace")
        _seed(stack)
        s.set_modes(stack.monolith.database, vote="forward", choice="forward",
                    question="forward")  # fmt: skip
        s.set_modes(stack.vote.database, vote="reverse")
        s.set_modes(stack.choice.database, choice="reverse")
        # Every consumer's queue exists before the first event is published (the relay
        # publishes with `mandatory`), the monolith's too: it is bound to vote.* and choice.*
        # from now on, so it also collects the monolith's own events, which it must skip.
        for deployable in deployables.values():
            deployable.env["AMQP_URL"] = amqp_url
            deployable.run("consume", "--service", deployable.name, "--declare-only")
        for name in ("monolith", "vote"):
            stack.procs[f"gunicorn-{name}"], stack.urls[name] = s.gunicorn(
                deployables[name], stack.logdir / f"gunicorn-{name}.log"
            )
        stack.start(
            "relay-monolith", stack.monolith, ["relay", "--producer", "monolith"]
        )
        stack.start("consume-vote", stack.vote, ["consume", "--service", "vote"])
        stack.start("consume-choice", stack.choice, ["consume", "--service", "choice"])
        yield stack
    finally:
        for proc in stack.procs.values():
            proc.stop()
        proxy.close()
        s.delete_queues(
            amqp_url, *queues.values(), *(f"{q}.dlq" for q in queues.values())
        )
        for deployable in deployables.values():
            s.drop_database(deployable.database)


def _seed(stack: Stack) -> None:
    """Users with questions and choices, loaded without events (history the backfill would
    have copied); the tests' votes and new questions go through the API."""
    subprocess.run(
        [sys.executable, str(s.ROOT / "monolith/manage.py"), "seed_polls", "--users",
         str(USERS), "--questions", str(QUESTIONS), "--choices-per-question", "4",
         "--votes", "0", "--seed", "3", "--password", "e2e-password"],
        env=stack.monolith.env, cwd=s.ROOT, check=True, capture_output=True,
    )  # fmt: skip
    db = stack.monolith.database
    stack.users = [row[0] for row in s.sql(db, "SELECT id FROM auth_user ORDER BY id")]
    for choice_id, question_id in s.sql(
        db, "SELECT id, question_id FROM polls_choice ORDER BY id"
    ):
        stack.choices.setdefault(question_id, []).append(choice_id)
