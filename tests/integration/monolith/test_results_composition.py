"""Results stay right whichever side owns votes and choices, and say 503 when it cannot know.

The vote and choice services run as real gunicorn processes on scratch databases; the rows
they hold are written straight into those databases.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
import requests
from django.db import connection

from strangler.dualwrite.modes import set_mode
from tests.factories import ChoiceFactory, QuestionFactory, VoteFactory
from tests.integration.parity.stack import ROOT, Server, drop, query, server_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

SERVICES = {
    "vote": ("extracted/vote_service", "extracted.vote_service.config"),
    "choice": ("extracted/choice_service", "extracted.choice_service.config"),
}


def _service_env(database: str, settings_module: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": server_url(database)}
    env["DJANGO_SETTINGS_MODULE"] = f"{settings_module}.settings"
    env["STRANGLER_DEV_DEFAULTS"] = "1"
    return env


@pytest.fixture(scope="module")
def services(tmp_path_factory, django_db_blocker):
    """Both services on scratch databases: ``{"vote": (url, db), "choice": (url, db)}``."""
    with django_db_blocker.unblock():
        base = connection.settings_dict["NAME"]
    started: dict[str, tuple[Server, str]] = {}
    logs = tmp_path_factory.mktemp("composition")
    try:
        for name, (project, module) in SERVICES.items():
            database = f"{base}_compose_{name}"
            drop(database)
            query("postgres", f'CREATE DATABASE "{database}"')
            env = _service_env(database, module)
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / project / "manage.py"),
                    "migrate",
                    "--noinput",
                ],
                env=env,
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            server = Server(f"{module}.wsgi", env, logs / f"{name}.log")
            started[name] = (server, database)
            server.wait_ready()
        yield {
            name: (server.url, database) for name, (server, database) in started.items()
        }
    finally:
        for server, database in started.values():
            server.stop()
            drop(database)


@pytest.fixture
def wired(settings, services):
    settings.STRANGLER_SERVICES = {name: url for name, (url, _) in services.items()}
    settings.STRANGLER_COMPOSE_TIMEOUT = 2.0
    for _, database in services.values():
        query(
            database,
            "TRUNCATE votes_vote" if "vote" in database else "TRUNCATE choices_choice",
        )
    return services


def remote_vote(
    services, vote_id: int, choice_id: int, question_id: int, user_id: int
) -> None:
    query(
        services["vote"][1],
        "INSERT INTO votes_vote (id, choice_id, question_id, user_id, created_at, seq)"
        " VALUES (%s, %s, %s, %s, %s, 1)",
        vote_id, choice_id, question_id, user_id, datetime.now(UTC),
    )  # fmt: skip


def remote_choice(services, choice_id: int, question_id: int, text: str) -> None:
    query(
        services["choice"][1],
        "INSERT INTO choices_choice (id, question_id, choice_text, seq) VALUES (%s, %s, %s, 1)",
        choice_id, question_id, text,
    )  # fmt: skip


def results(client, question_id: int):
    return client.get(f"/api/questions/{question_id}/results/")


def counts_of(body) -> dict[int, int]:
    return {c["id"]: c["votes"] for c in body["choices"]}


@pytest.fixture
def poll():
    question = QuestionFactory()
    first, second = ChoiceFactory(question=question), ChoiceFactory(question=question)
    VoteFactory(choice=first)
    return question, first, second


def test_monolith_owned_results_come_from_one_local_query(
    client, poll, wired, django_assert_num_queries
):
    question, first, second = poll
    remote_vote(wired, 9001, second.pk, question.pk, 5)  # the service's copy is ignored
    results(client, question.pk)  # warm the mode cache
    with django_assert_num_queries(1):
        response = results(client, question.pk)
    assert counts_of(response.json()) == {first.pk: 1, second.pk: 0}


def test_votes_owned_by_the_service_are_counted_there(client, poll, wired):
    question, first, second = poll
    set_mode("vote", "reverse")
    remote_vote(wired, 9001, second.pk, question.pk, 5)
    remote_vote(wired, 9002, second.pk, question.pk, 6)
    body = results(client, question.pk).json()
    assert counts_of(body) == {first.pk: 0, second.pk: 2}
    assert body["total_votes"] == 2
    assert [c["choice_text"] for c in body["choices"]] == [
        first.choice_text,
        second.choice_text,
    ]


def test_choices_owned_by_the_service_are_listed_from_it(client, poll, wired):
    question, first, _ = poll
    set_mode("choice", "reverse")
    remote_choice(wired, first.pk, question.pk, "renamed in the service")
    remote_choice(wired, 777, question.pk, "only in the service")
    body = results(client, question.pk).json()
    assert [(c["id"], c["choice_text"], c["votes"]) for c in body["choices"]] == [
        (first.pk, "renamed in the service", 1),
        (777, "only in the service", 0),
    ]


def test_both_owned_elsewhere_compose_both_services(client, poll, wired):
    question, first, _ = poll
    set_mode("vote", "reverse")
    set_mode("choice", "reverse")
    remote_choice(wired, 501, question.pk, "a")
    remote_choice(wired, 502, question.pk, "b")
    remote_vote(wired, 9001, 502, question.pk, 5)
    body = results(client, question.pk).json()
    assert counts_of(body) == {501: 0, 502: 1}
    assert body["total_votes"] == 1
    assert first.pk not in counts_of(body)


def test_unknown_question_is_404_even_when_composed(client, wired):
    set_mode("vote", "reverse")
    assert results(client, 424242).status_code == 404


def test_dead_vote_service_is_a_503_naming_it(client, poll, settings, wired):
    question, _, _ = poll
    set_mode("vote", "reverse")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings.STRANGLER_SERVICES = {**settings.STRANGLER_SERVICES, "vote": dead}
    response = results(client, question.pk)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert "vote service" in error["message"]


def test_slow_vote_service_times_out_into_a_503(client, poll, settings, wired):
    question, _, _ = poll
    set_mode("vote", "reverse")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(
        target=lambda: accepted.append(listener.accept()[0]), daemon=True
    )
    thread.start()
    settings.STRANGLER_SERVICES = {
        **settings.STRANGLER_SERVICES,
        "vote": f"http://127.0.0.1:{listener.getsockname()[1]}",
    }
    settings.STRANGLER_COMPOSE_TIMEOUT = 0.3
    try:
        response = results(client, question.pk)
    finally:
        for conn in accepted:
            conn.close()
        listener.close()
    assert response.status_code == 503
    assert "did not answer" in response.json()["error"]["message"]


def test_vote_counts_endpoint_needs_the_internal_token(wired):
    url = f"{wired['vote'][0]}/_strangler/internal/vote-counts?question=1"
    assert requests.get(url, timeout=5).status_code == 401
    forged = requests.get(url, headers={"Authorization": "Bearer guess"}, timeout=5)
    assert forged.status_code == 401
