"""The choice service's relay end to end: in the ``writes`` stage of the choice plan the
choice service owns choices, and what it creates, renames and deletes reaches the monolith's
legacy ``polls_choice`` (reverse path) and the vote service's choice projection, through
``strangler relay --producer choice`` SIGKILLed and restarted mid-run, on real PostgreSQL and
RabbitMQ. A vote the monolith accepts on a choice born in the service then reaches the vote
service, which only knows that choice from the choice service's events.

Sets are compared in full: ``(id, question_id, choice_text)``.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.e2e import stack as s

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

CHOICES = 60


def choices(database: str, table: str, question: int) -> set[tuple]:
    return set(
        s.sql(
            database,
            f"SELECT id, question_id, choice_text FROM {table}"  # noqa: S608
            " WHERE question_id = %s",
            question,
        )
    )


def projection(stack, question: int) -> set[tuple]:
    return set(
        s.sql(
            stack.vote.database,
            "SELECT id, question_id FROM votes_choiceref WHERE question_id = %s",
            question,
        )
    )


def test_in_the_writes_stage_the_choice_services_changes_reach_the_monolith_and_votes(
    stack,
):
    creator, voter = stack.users[0], stack.users[1]
    stack.procs["gunicorn-choice"], stack.urls["choice"] = s.gunicorn(
        stack.choice, stack.logdir / "gunicorn-choice.log"
    )
    made = stack.call(
        "POST", "monolith", "/api/questions/", creator, {"question_text": "Relay?"}
    )
    assert made.status_code == 201, made.text
    question = made.json()["id"]
    s.wait_until(
        lambda: s.sql(stack.choice.database,
                      "SELECT count(*) FROM choices_questionref WHERE id = %s",
                      question) == [(1,)],
        "the choice service knows the new question", stack.logs,
    )  # fmt: skip
    legacy_max = s.sql(stack.monolith.database, "SELECT max(id) FROM polls_choice")[0][
        0
    ]

    # The choice plan's writes stage: the monolith's choices are reverse, the service's
    # forward (caches of at most 1 s pick it up); service ids move past the legacy's.
    s.set_modes(stack.monolith.database, choice="reverse")
    s.set_modes(stack.choice.database, choice="forward")
    time.sleep(1.5)
    stack.choice.run(
        "sync", "cutover-sequences", "choice",
        "--source-url", s.database_url(stack.monolith.database),
        "--target-url", s.database_url(stack.choice.database),
    )  # fmt: skip
    relay = stack.start("relay-choice", stack.choice, ["relay", "--producer", "choice"])
    stack.start(
        "consume-monolith", stack.monolith, ["consume", "--service", "monolith"]
    )

    refused = stack.call(
        "POST", "monolith", "/api/choices/", creator,
        {"question": question, "choice_text": "legacy"},
    )  # fmt: skip
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "owned_elsewhere"

    rng = random.Random(7)
    created: list[int] = []
    for n in range(CHOICES):
        answer = stack.call(
            "POST", "choice", "/api/choices/", creator,
            {"question": question, "choice_text": f"option {n}"},
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        created.append(answer.json()["id"])
        if n % 7 == 3:
            renamed = stack.call(
                "PATCH", "choice", f"/api/choices/{created[-2]}/", creator,
                {"choice_text": f"renamed {n}"},
            )  # fmt: skip
            assert renamed.status_code == 200, renamed.text
        if n % 11 == 5:
            gone = stack.call(
                "DELETE", "choice", f"/api/choices/{created[-3]}/", creator
            )
            assert gone.status_code == 204, gone.text
        if n % 15 == 9:
            time.sleep(rng.uniform(0.0, 0.3))
            relay.restart_killed()

    owned = choices(stack.choice.database, "choices_choice", question)
    assert len(owned) == CHOICES - len(range(5, CHOICES, 11))
    assert min(row[0] for row in owned) > legacy_max
    s.wait_until(
        lambda: (
            s.unsent(stack.choice.database) == 0
            and choices(stack.monolith.database, "polls_choice", question) == owned
            and projection(stack, question) == {(i, q) for i, q, _ in owned}
        ),
        "choice events reached the monolith and the vote service",
        stack.logs,
    )
    # Applying the service's events recorded nothing in the monolith's outbox (no echo).
    assert not s.sql(
        stack.monolith.database,
        "SELECT id FROM strangler_dualwrite_outboxevent WHERE aggregate_type = 'choice'"
        " AND aggregate_id = ANY(%s)",
        [str(i) for i in created],
    )

    # Votes still belong to the monolith: a vote on a choice born in the service is
    # accepted there and reaches the vote service, which knows the choice from its events.
    target = max(row[0] for row in owned)
    vote = stack.call("POST", "monolith", "/api/votes/", voter, {"choice": target})
    assert vote.status_code == 201, vote.text
    s.wait_until(
        lambda: s.sql(stack.vote.database,
                      "SELECT choice_id, question_id, user_id FROM votes_vote"
                      " WHERE id = %s", vote.json()["id"]) == [(target, question, voter)],
        "the vote reached the vote service", stack.logs,
    )  # fmt: skip
    assert s.drain_queue(stack.amqp_url, f"{stack.queues['monolith']}.dlq") == []
    assert s.drain_queue(stack.amqp_url, f"{stack.queues['vote']}.dlq") == []
    assert relay.popen.poll() is None, stack.logs()
