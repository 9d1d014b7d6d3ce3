"""The event path end to end on real PostgreSQL and RabbitMQ: votes cast through the monolith's
API reach the vote service exactly once whatever is killed or cut; poison is dead-lettered
without blocking; question.deleted reaches both services; and in the ``writes`` stage the vote
service's votes flow back into the monolith's legacy table.

Sets are compared in full, ``(id, choice_id, question_id, user_id)``; counts are not enough.
``STRANGLER_LONG=1`` casts more votes with more kills. The tests share one stack (conftest.py)
and run in file order; the last one moves votes to the ``writes`` stage.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from tests.e2e import stack as s

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

LONG = os.environ.get("STRANGLER_LONG") == "1"
KILLS = 24 if LONG else 6
RETRACT_EVERY = 25
RNG = random.Random(int(os.environ.get("STRANGLER_SEED", time.time())))


def cast_all(stack, where: str, jobs: list[tuple[int, int]], errors: list) -> list:
    """Cast ``(user, choice)`` votes with 16 clients; every 25th is retracted again.
    Returns the created votes' ids, in job order."""

    def one(numbered: tuple[int, tuple[int, int]]) -> int | None:
        n, (user, choice) = numbered
        response = stack.call("POST", where, "/api/votes/", user, {"choice": choice})
        if response.status_code != 201:
            errors.append((response.status_code, response.text[:200]))
            return None
        vote_id = response.json()["id"]
        if n % RETRACT_EVERY == 0:
            gone = stack.call("DELETE", where, f"/api/votes/{vote_id}/", user)
            if gone.status_code != 204:
                errors.append((gone.status_code, gone.text[:200]))
        return vote_id

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, enumerate(jobs)))


def jobs_for(stack, questions: list[int], users: list[int]) -> list[tuple[int, int]]:
    jobs = [
        (user, RNG.choice(stack.choices[question]))
        for question in questions
        for user in users
    ]
    RNG.shuffle(jobs)
    return jobs


def assert_forward_equal(stack) -> set[s.Row]:
    s.wait_until(stack.forward_drained, "forward path drained", stack.logs)
    monolith = s.votes(stack.monolith.database, "polls_vote")
    assert s.votes(stack.vote.database, "votes_vote") == monolith
    return monolith


def test_sigkilled_relay_and_consumer_lose_and_duplicate_no_vote(stack):
    questions = sorted(stack.choices)[:4]
    jobs = jobs_for(stack, questions, stack.users)
    before = s.votes(stack.monolith.database, "polls_vote")
    errors: list = []
    created: list = []
    done = threading.Event()

    def produce() -> None:
        try:
            created.extend(cast_all(stack, "monolith", jobs, errors))
        finally:
            done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    victims = {
        "relay": stack.procs["relay-monolith"],
        "consumer": stack.procs["consume-vote"],
    }
    kills = {"relay": 0, "consumer": 0}
    order = itertools.cycle(RNG.sample(sorted(victims), 2))
    try:
        while not done.is_set() or sum(kills.values()) < KILLS:
            time.sleep(RNG.uniform(0.2, 1.2))
            if sum(kills.values()) < KILLS:
                name = next(order)
                victims[name].restart_killed()
                kills[name] += 1
    finally:
        producer.join()
    assert not errors, errors[:5]
    assert len(jobs) >= 2000 and kills == {"relay": KILLS // 2, "consumer": KILLS // 2}

    monolith = assert_forward_equal(stack)
    retracted = set(created[::RETRACT_EVERY])
    new = {row for row in monolith - before}
    assert {row[0] for row in new} == set(created) - retracted
    assert not {row for row in monolith if row[0] in retracted}
    assert s.drain_queue(stack.amqp_url, f"{stack.queues['vote']}.dlq") == []
    assert all(p.popen.poll() is None for p in victims.values()), stack.logs()


def test_votes_cast_while_the_broker_link_is_cut_arrive_after_it_returns(stack):
    questions = sorted(stack.choices)[4:6]
    jobs = jobs_for(stack, questions, stack.users)
    thirds = [jobs[: len(jobs) // 3], jobs[len(jobs) // 3 : 2 * len(jobs) // 3]]
    thirds.append(jobs[2 * len(jobs) // 3 :])
    errors: list = []
    cast_all(stack, "monolith", thirds[0], errors)
    stack.proxy.cut()
    try:
        during = cast_all(stack, "monolith", thirds[1], errors)
        time.sleep(2)  # hold the outage while relay and consumer retry with backoff
        # The monolith kept taking votes; none of them can have crossed the cut link.
        assert s.unsent(stack.monolith.database) >= len(during)
        in_service = {row[0] for row in s.votes(stack.vote.database, "votes_vote")}
        assert not in_service & set(during)
    finally:
        stack.proxy.restore()
    cast_all(stack, "monolith", thirds[2], errors)
    assert not errors, errors[:5]
    monolith = assert_forward_equal(stack)
    kept = set(during) - set(during[::RETRACT_EVERY])
    assert kept <= {row[0] for row in monolith}


def test_malformed_and_unknown_events_are_dead_lettered_and_do_not_block(stack):
    unknown = s.envelope(
        id=str(uuid.uuid4()), type="vote.renamed", source="monolith",
        aggregate_id="1", seq=1, occurred_at=datetime.now(UTC).isoformat(), data={},
    )  # fmt: skip
    bad_seq = json.loads(unknown) | {"type": "vote.created", "seq": "first"}
    poison = [
        ("vote.created", b'{"id": "not json'),
        ("vote.renamed", unknown),
        ("vote.created", json.dumps(bad_seq).encode()),
    ]
    for routing_key, body in poison:
        s.publish_raw(stack.amqp_url, routing_key, body)
    errors: list = []
    question = sorted(stack.choices)[6]
    cast_all(stack, "monolith", jobs_for(stack, [question], stack.users[:60]), errors)
    assert not errors, errors[:5]
    assert_forward_equal(stack)

    dead = s.drain_queue(stack.amqp_url, f"{stack.queues['vote']}.dlq")
    assert [body for _, body in dead] == [body for _, body in poison]
    reasons = [headers["x-strangler-reason"] for headers, _ in dead]
    assert "body is not JSON" in reasons[0]
    assert "no handler for 'vote.renamed'" in reasons[1]
    assert reasons[2].startswith("seq:")
    assert {h["x-strangler-queue"] for h, _ in dead} == {stack.queues["vote"]}


def test_question_deleted_removes_its_votes_and_choices_in_both_services(stack):
    creator, voters = stack.users[0], stack.users[1:6]
    question = stack.call(
        "POST", "monolith", "/api/questions/", creator, {"question_text": "Tabs?"}
    ).json()["id"]
    choices = [
        stack.call("POST", "monolith", "/api/choices/", creator,
                   {"question": question, "choice_text": text}).json()["id"]
        for text in ("yes", "no")
    ]  # fmt: skip
    for n, voter in enumerate(voters):
        response = stack.call(
            "POST", "monolith", "/api/votes/", voter, {"choice": choices[n % 2]}
        )
        assert response.status_code == 201, response.text

    def choice_rows() -> list[tuple]:
        return s.sql(
            stack.choice.database,
            "SELECT id FROM choices_choice WHERE question_id = %s ORDER BY id",
            question,
        )

    def vote_rows() -> list[tuple]:
        return s.sql(
            stack.vote.database,
            "SELECT id FROM votes_vote WHERE question_id = %s",
            question,
        )

    s.wait_until(
        lambda: len(choice_rows()) == 2, "choices in the choice service", stack.logs
    )
    assert_forward_equal(stack)
    assert len(vote_rows()) == len(voters)

    deleted = stack.call("DELETE", "monolith", f"/api/questions/{question}/", creator)
    assert deleted.status_code == 204, deleted.text
    s.wait_until(lambda: not choice_rows(), "choices gone", stack.logs)
    assert_forward_equal(stack)
    assert vote_rows() == []
    for service in (stack.vote, stack.choice):
        assert s.sql(
            service.database,
            "SELECT deleted FROM strangler_consumer_aggregateversion"
            " WHERE aggregate_type = 'question' AND aggregate_id = %s",
            str(question),
        ) == [(True,)]
    assert s.sql(
        stack.vote.database, "SELECT count(*) FROM votes_choiceref WHERE question_id = %s",
        question,
    ) == [(0,)]  # fmt: skip


def test_in_the_writes_stage_the_vote_services_votes_reach_the_legacy_table(stack):
    creator = stack.users[0]
    question = stack.call(
        "POST", "monolith", "/api/questions/", creator, {"question_text": "Reverse?"}
    ).json()["id"]
    choices = [
        stack.call("POST", "monolith", "/api/choices/", creator,
                   {"question": question, "choice_text": f"c{n}"}).json()["id"]
        for n in range(3)
    ]  # fmt: skip
    stack.choices[question] = choices
    s.wait_until(
        lambda: s.sql(stack.vote.database,
                      "SELECT count(*) FROM votes_choiceref WHERE question_id = %s",
                      question) == [(3,)],
        "the vote service's choice projection", stack.logs,
    )  # fmt: skip
    legacy_before = assert_forward_equal(stack)

    # The writes stage (strangler/plan/stages.py MODES): the monolith's votes are reverse,
    # the service's forward; caches of at most 1 s pick it up; ids move past the legacy's.
    s.set_modes(stack.monolith.database, vote="reverse")
    s.set_modes(stack.vote.database, vote="forward")
    time.sleep(1.5)
    monolith_url = s.database_url(stack.monolith.database)
    vote_url = s.database_url(stack.vote.database)
    stack.vote.run("sync", "cutover-sequences", "vote", "--source-url", monolith_url,
                   "--target-url", vote_url)  # fmt: skip
    monolith_events = s.sql(
        stack.monolith.database, "SELECT count(*) FROM strangler_dualwrite_outboxevent"
    )
    stack.start("relay-vote", stack.vote, ["relay", "--producer", "vote"])
    stack.start(
        "consume-monolith", stack.monolith, ["consume", "--service", "monolith"]
    )

    refused = stack.call(
        "POST", "monolith", "/api/votes/", stack.users[-1], {"choice": choices[0]}
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "owned_elsewhere"

    errors: list = []
    created = cast_all(stack, "vote", jobs_for(stack, [question], stack.users), errors)
    # Votes the monolith created and the service consumed, retracted through the service:
    # their vote.deleted must carry a seq above the one the monolith published.
    old = sorted(legacy_before)[:40]
    for vote_id, _, _, user in old:
        gone = stack.call("DELETE", "vote", f"/api/votes/{vote_id}/", user)
        assert gone.status_code == 204, gone.text
    assert not errors, errors[:5]

    def reverse_drained() -> bool:
        return s.unsent(stack.vote.database) == 0 and s.votes(
            stack.monolith.database, "polls_vote"
        ) == s.votes(stack.vote.database, "votes_vote")

    s.wait_until(reverse_drained, "reverse path drained", stack.logs)
    legacy = s.votes(stack.monolith.database, "polls_vote")
    assert legacy == s.votes(stack.vote.database, "votes_vote")
    new_ids = {v for v in created if v} - set(created[::RETRACT_EVERY])
    assert {row[0] for row in legacy - legacy_before} == new_ids
    assert min(new_ids) > max(row[0] for row in legacy_before) + 1000
    assert not {row for row in old} & legacy
    # Applying the service's events recorded nothing in the monolith's outbox (no echo).
    assert (
        s.sql(
            stack.monolith.database,
            "SELECT count(*) FROM strangler_dualwrite_outboxevent",
        )
        == monolith_events
    )
