"""Causal fences of shadowed writes, through the real router to the real monolith (primary,
on the test database) and the real vote service (shadow, on a scratch database, no consumer
running: the test delivers events itself to its ``/_strangler/internal/events`` endpoint,
the HTTP transport of the consumer, so it decides when the service catches up).

(a) the primary reports its events to the router, never to the client; (b) a retraction's
dry run waits for the vote's creation to be applied on the service, then executes and
matches; (c) a dry run whose primary's own event the service applied first is counted as
overtaken, neither a match nor a mismatch; (d) a cast refused by the monolith whose dry run
met a service behind on a vote the router never fenced (cast before the route had a shadow)
is asked again of both sides as dry runs, and converges once the service caught up, or
stays a mismatch if it never does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import psycopg2
import pytest
import requests

from tests.integration.router import procs
from tests.integration.router.conftest import config_text
from tests.integration.router.test_shadow import records

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
EVENTS_TOKEN = "fence-test-events-token"


def database_url(name: str) -> str:
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"


def admin(name: str, sql: str) -> None:
    with closing(psycopg2.connect(database_url(name))) as conn:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(sql)


@pytest.fixture
def vote_database():
    name = f"fence_vote_{uuid.uuid4().hex[:8]}"
    admin("postgres", f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        admin("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def gunicorn(app: str, env: dict[str, str], log) -> procs.Proc:
    port = procs.free_port()
    return procs.Proc(
        [sys.executable, "-m", "gunicorn", f"{app}:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2"],
        env, f"http://127.0.0.1:{port}", log,
    )  # fmt: skip


def deliver(service: str, *envelopes: dict) -> None:
    """Hand events to the service's consumer over its HTTP transport."""
    answer = requests.post(
        f"{service}/_strangler/internal/events",
        json={"events": list(envelopes)},
        headers={"Authorization": f"Bearer {EVENTS_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"]["applied"] == len(envelopes), answer.text


def outbox(aggregate_type: str, aggregate_id: int, seq: int) -> dict:
    from strangler.dualwrite.models import OutboxEvent

    row = OutboxEvent.objects.get(
        aggregate_type=aggregate_type, aggregate_id=str(aggregate_id), seq=seq
    )
    return row.envelope


def choice_created(choice) -> dict:
    from strangler.events.envelope import Event

    data = {"id": choice.pk, "question": choice.question_id, "choice_text": "c"}
    event = Event(
        type="choice.created", source="monolith", aggregate_id=str(choice.pk), seq=1,
        data=data,
    )  # fmt: skip
    return event.to_dict()


def shadow_counts(router) -> dict[str, float]:
    metrics = procs.http.get(router.url + "/metrics").text
    counts = {}
    for line in metrics.splitlines():
        if line.startswith("router_shadow_total{") and 'route="votes"' in line:
            result = line.split('result="')[1].split('"')[0]
            counts[result] = float(line.split()[-1])
    return counts


def live(router, version: int) -> None:
    """Until the router runs config ``version``."""
    deadline = time.monotonic() + 10
    while True:
        status = procs.http.get(
            router.url + "/_strangler/api/status",
            headers={"X-Strangler-Operator-Token": procs.OPERATOR_TOKEN},
        ).json()
        if status["version"] == version:
            return
        assert time.monotonic() < deadline, status["version"]
        time.sleep(0.1)


def no_new_record(store, count: int, seconds: float) -> None:
    """Still ``count`` shadow records after ``seconds``: the dry run is waiting."""
    time.sleep(seconds)
    path = store.root / "shadow.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    assert len(lines) == count


@dataclass
class Polls:
    monolith: procs.Proc
    vote: procs.Proc
    first: Any  # two choices on two questions
    second: Any
    auth: dict[str, str]  # one user's bearer token

    def install(self, store, shadow: str = "", settings: str = "") -> None:
        """Commit the one route, POST and DELETE on /api/votes/** to the monolith, with
        ``shadow`` (YAML; none if empty). Backends keep the default read timeout (15 s),
        not the 1 s of config_text: a dry run waiting for its fence answers late."""
        extra = f", shadow: {shadow}" if shadow else ""
        route = (
            "  - {name: votes, methods: [POST, DELETE], path: /api/votes/**,"
            f" to: monolith{extra}}}\n"
        )
        backends = {"monolith": self.monolith.url, "vote": self.vote.url}
        text = config_text(backends, route, settings)
        text = text.replace("read_timeout: 1.0", "read_timeout: 15.0")
        store.commit(text, action="t", why="t")

    def cast(self, router, choice) -> requests.Response:
        return procs.http.post(
            router.url + "/api/votes/", json={"choice": choice.pk}, headers=self.auth
        )


@pytest.fixture
def polls(tmp_path, vote_database) -> Iterator[Polls]:
    """The real monolith (the primary, on the test database) and the real vote service (on
    its own scratch database, events delivered by hand), both with the router's token."""
    from django.db import connection

    from strangler.auth.tokens import issue_token
    from strangler.dualwrite.modes import set_mode
    from tests.factories import ChoiceFactory, UserFactory

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    set_mode("vote", "forward")
    user = UserFactory()
    first, second = ChoiceFactory(), ChoiceFactory()
    base = {
        **os.environ,
        "STRANGLER_ROUTER_TOKEN": procs.ROUTER_TOKEN,
        "STRANGLER_EVENTS_TOKEN": EVENTS_TOKEN,
        "STRANGLER_DRY_RUN_FENCE_SECONDS": "30",
    }
    vote_env = {
        **base,
        "DATABASE_URL": database_url(vote_database),
        "DJANGO_SETTINGS_MODULE": "extracted.vote_service.config.settings",
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v0"],
        env=vote_env, cwd=procs.ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    # As at the shadow stage: the service's ids start past the monolith's (cutover).
    admin(
        vote_database, "SELECT setval(pg_get_serial_sequence('votes_vote', 'id'), 1000)"
    )
    monolith_env = {
        **base,
        "DATABASE_URL": database_url(connection.settings_dict["NAME"]),
        "DJANGO_SETTINGS_MODULE": "monolith.config.settings",
    }
    monolith = gunicorn("monolith.config.wsgi", monolith_env, tmp_path / "mono.log")
    vote = gunicorn("extracted.vote_service.config.wsgi", vote_env, tmp_path / "v.log")
    ready = {p: ("/readyz", (200,)) for p in (monolith, vote)}
    with procs.running(monolith, vote, ready=ready):
        # The service knows both choices, as the consumer would have made it.
        deliver(vote.url, choice_created(first), choice_created(second))
        auth = {"Authorization": f"Bearer {issue_token(user.pk)['access']}"}
        yield Polls(monolith, vote, first, second, auth)


def test_dry_runs_wait_for_the_users_earlier_writes_and_overtaken_ones_are_not_compared(
    store, start_router, polls
):
    vote, auth, first, second = polls.vote, polls.auth, polls.first, polls.second
    polls.install(store, shadow="vote")
    router = start_router()

    # (a) A cast: the monolith reports its event to the router only.
    cast = polls.cast(router, first)
    assert cast.status_code == 201, cast.text
    vote_id = cast.json()["id"]
    assert "X-Strangler-Events" not in cast.headers
    [record] = records(store.root, 1)
    assert record["primary"]["headers"]["X-Strangler-Events"] == f"vote:{vote_id}@1"
    assert record["comparison"]["matched"] is True, record
    assert record["shadow"]["headers"]["X-Strangler-Dry-Run-Outcome"] == "executed"

    # (b) Its retraction: the service has not applied the cast yet, so the dry run
    # waits (no record), and executes once the cast is delivered: 204 like the primary.
    gone = procs.http.delete(f"{router.url}/api/votes/{vote_id}/", headers=auth)
    assert gone.status_code == 204
    assert "X-Strangler-Events" not in gone.headers
    no_new_record(store, 1, 1.0)
    deliver(vote.url, outbox("vote", vote_id, 1))
    retract = records(store.root, 2)[1]
    assert retract["method"] == "DELETE" and retract["shadow"]["status"] == 204
    assert retract["comparison"]["matched"] is True, retract
    shadow_headers = retract["shadow"]["headers"]
    assert shadow_headers["X-Strangler-Dry-Run-Outcome"] == "executed"
    assert shadow_headers["X-Strangler-Applied"] == f"vote:{vote_id}@1"

    # (c) A new cast on the same question: its dry run waits for the retraction; the
    # service gets the retraction and the new cast together, so when the dry run may
    # run the primary's own vote is already there: overtaken, not compared.
    again = polls.cast(router, first)
    assert again.status_code == 201, again.text
    new_id = again.json()["id"]
    no_new_record(store, 2, 0.5)
    deliver(vote.url, outbox("vote", vote_id, 2), outbox("vote", new_id, 1))
    deadline = time.monotonic() + 15
    while shadow_counts(router).get("overtaken", 0) < 1:
        assert time.monotonic() < deadline, shadow_counts(router)
        time.sleep(0.1)

    # A cast on another question: nothing left to wait for, executed and matched.
    other = polls.cast(router, second)
    assert other.status_code == 201, other.text
    assert records(store.root, 3)[2]["comparison"]["matched"] is True
    counts = shadow_counts(router)
    assert counts["match"] == 3.0 and counts["overtaken"] == 1.0
    assert "mismatch" not in counts and "fence-timeout" not in counts
    status = procs.http.get(
        router.url + "/_strangler/api/status",
        headers={"X-Strangler-Operator-Token": procs.OPERATOR_TOKEN},
    ).json()["shadow"]["votes"]
    assert (status["compared"], status["not_comparable"], status["parity"]) == (
        3,
        1,
        1.0,
    )
    assert len(records(store.root, 3)) == 3  # the overtaken dry run is not recorded
    assert json.loads(record["shadow"]["body"])["choice"] == first.pk


def test_a_rejected_write_that_raced_an_unfenced_earlier_one_is_rechecked_on_both_sides(
    store, start_router, polls
):
    """The gap the plan's end-to-end run fell into: the user's first vote was cast while the
    route had no shadow, so the router kept no fence for it. Their second cast on the same
    question, shadowed, is answered 409 by the monolith, while its dry run meets a service
    the first vote has not reached yet: 201. The primary committed nothing, so the same
    request can be asked again, as a dry run on both sides, once the event lag passed."""
    polls.install(store)
    router = start_router()
    cast = polls.cast(router, polls.first)
    assert cast.status_code == 201, cast.text
    vote_id = cast.json()["id"]

    polls.install(store, shadow="vote", settings="  shadow_recheck_seconds: 3")
    live(router, 2)

    again = polls.cast(router, polls.first)
    assert again.status_code == 409, again.text
    # Its dry run ran at once, on a service without the first vote; its difference
    # waits for the recheck, unrecorded.
    no_new_record(store, 0, 1.0)
    deliver(polls.vote.url, outbox("vote", vote_id, 1))  # the consumer catches up

    [record] = records(store.root, 1)
    assert record["dry_run"] is True
    lagged = record["first"]
    assert (lagged["primary"]["status"], lagged["shadow"]["status"]) == (409, 201)
    assert lagged["comparison"]["matched"] is False
    # The recheck: the same request as a dry run on both sides, after the lag.
    assert (record["primary"]["status"], record["shadow"]["status"]) == (409, 409)
    assert record["primary"]["headers"]["X-Strangler-Dry-Run"] == "rolled-back"
    assert record["comparison"]["matched"] is True
    counts = shadow_counts(router)
    assert counts["converged"] == 1.0 and "mismatch" not in counts, counts
    # Neither dry run wrote: one vote of this user, on the monolith only.
    from strangler.dualwrite.models import OutboxEvent

    assert OutboxEvent.objects.filter(aggregate_type="vote").count() == 1


def test_a_shadow_sampled_at_zero_percent_keeps_fences_for_the_first_dry_runs(
    store, start_router, polls
):
    """What the plan does at dual-write: the write route's shadow at 0 % sends nothing to
    the service but keeps each user's events, so when shadowing starts the same user's
    next dry run waits for the write made just before."""
    polls.install(store, shadow="{to: vote, percent: 0}")
    router = start_router()
    cast = polls.cast(router, polls.first)
    assert cast.status_code == 201, cast.text
    vote_id = cast.json()["id"]
    assert "X-Strangler-Events" not in cast.headers
    no_new_record(store, 0, 0.5)  # nothing shadowed at 0 %
    assert shadow_counts(router) == {}

    polls.install(store, shadow="{to: vote, percent: 100}")
    live(router, 2)
    again = polls.cast(router, polls.first)
    assert again.status_code == 409, again.text
    no_new_record(store, 0, 1.0)  # the dry run waits for the first vote
    deliver(polls.vote.url, outbox("vote", vote_id, 1))
    [record] = records(store.root, 1)
    assert "first" not in record  # right the first time: no recheck
    assert (record["primary"]["status"], record["shadow"]["status"]) == (409, 409)
    shadow_headers = record["shadow"]["headers"]
    assert shadow_headers["X-Strangler-Applied"] == f"vote:{vote_id}@1"
    assert shadow_counts(router) == {"match": 1.0}


def test_a_rejected_write_that_still_differs_after_the_lag_is_a_mismatch(
    store, start_router, polls
):
    polls.install(store)
    router = start_router()
    cast = polls.cast(router, polls.first)
    assert cast.status_code == 201, cast.text
    polls.install(store, shadow="vote", settings="  shadow_recheck_seconds: 0.3")
    live(router, 2)
    again = polls.cast(router, polls.first)
    assert again.status_code == 409, again.text
    # The first vote never reaches the service: every recheck still differs.
    [record] = records(store.root, 1)
    assert record["first"]["shadow"]["status"] == 201
    assert (record["primary"]["status"], record["shadow"]["status"]) == (409, 201)
    assert record["comparison"]["matched"] is False
    counts = shadow_counts(router)
    assert counts["mismatch"] == 1.0 and "converged" not in counts, counts
