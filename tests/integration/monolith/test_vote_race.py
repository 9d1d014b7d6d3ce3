"""One vote per user per question holds under concurrency, enforced by PostgreSQL itself."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import IntegrityError, connection, transaction

from monolith.polls.models import Vote
from tests.conftest import bearer
from tests.factories import ChoiceFactory, QuestionFactory, UserFactory

pytestmark = [pytest.mark.postgres]

ATTEMPTS = 20


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_votes_on_one_question_record_exactly_one(live_server):
    voter = UserFactory()
    question = QuestionFactory()
    choices = ChoiceFactory.create_batch(4, question=question)
    headers = {"Authorization": bearer(voter)["HTTP_AUTHORIZATION"]}
    start = threading.Barrier(ATTEMPTS)

    def attempt(n: int) -> requests.Response:
        with requests.Session() as session:
            start.wait()
            return session.post(
                f"{live_server.url}/api/votes/",
                json={"choice": choices[n % len(choices)].pk},
                headers=headers,
                timeout=60,
            )

    with ThreadPoolExecutor(max_workers=ATTEMPTS) as pool:
        responses = list(pool.map(attempt, range(ATTEMPTS)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (ATTEMPTS - 1), [r.text for r in responses]
    conflicts = [r.json()["error"]["code"] for r in responses if r.status_code == 409]
    assert set(conflicts) == {"already_voted"}
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    vote = Vote.objects.get(user=voter, question=question)
    assert Vote.objects.count() == 1
    assert (winner["id"], winner["choice"]) == (vote.pk, vote.choice_id)


@pytest.mark.django_db
def test_database_rejects_a_vote_whose_question_is_not_its_choices():
    choice = ChoiceFactory()
    elsewhere = QuestionFactory()
    user = UserFactory()
    refused = pytest.raises(IntegrityError, match="polls_vote_choice_matches_question")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        # The key is deferred; make it fire on this statement, not at commit.
        cursor.execute("SET CONSTRAINTS polls_vote_choice_matches_question IMMEDIATE")
        cursor.execute(
            "INSERT INTO polls_vote (choice_id, question_id, user_id, created_at)"
            " VALUES (%s, %s, %s, now())",
            [choice.pk, elsewhere.pk, user.pk],
        )
    assert Vote.objects.count() == 0


@pytest.mark.django_db
def test_database_rejects_a_second_vote_by_the_same_user_on_a_question():
    first, second = ChoiceFactory.create_batch(2, question=QuestionFactory())
    user = UserFactory()
    insert = (
        "INSERT INTO polls_vote (choice_id, question_id, user_id, created_at)"
        " VALUES (%s, %s, %s, now())"
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, [first.pk, first.question_id, user.pk])
    refused = pytest.raises(
        IntegrityError, match="polls_vote_one_per_user_per_question"
    )
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert, [second.pk, second.question_id, user.pk])
    assert Vote.objects.count() == 1
