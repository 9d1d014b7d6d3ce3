"""manage.py seed_polls: the COPY path on PostgreSQL, the bulk path on SQLite, bad options."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, F

from monolith.polls.models import Question, Vote
from tests.factories import QuestionFactory, UserFactory
from tests.integration.monolith.apihelpers import row_counts

REPO = Path(__file__).resolve().parents[3]


def seed(*args: str) -> dict:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_polls", *args, "--json", "--seed", "7", stdout=out, stderr=err)
    return json.loads(out.getvalue())


SMALL = ("--users", "12", "--questions", "5", "--choices-per-question", "3")


@pytest.mark.postgres
@pytest.mark.django_db
def test_seed_creates_the_requested_rows_with_distinct_user_question_pairs():
    summary = seed(*SMALL, "--votes", "50", "--password", "pw-123")
    assert summary["skipped"] is False
    assert (summary["users"], summary["questions"], summary["choices"]) == (12, 5, 15)
    assert summary["votes"] == 50
    assert row_counts() == {"questions": 5, "choices": 15, "votes": 50}
    assert get_user_model().objects.count() == 12
    usernames = sorted(get_user_model().objects.values_list("username", flat=True))
    assert usernames[0] == "user0001" and usernames[-1] == "user0012"
    pairs = Vote.objects.values("user", "question").annotate(n=Count("id"))
    assert len(pairs) == 50 and all(pair["n"] == 1 for pair in pairs)
    assert not Vote.objects.exclude(question_id=F("choice__question_id")).exists()
    assert all(count == 3 for count in Question.objects.annotate(
        n=Count("choices")).values_list("n", flat=True))  # fmt: skip
    hashes = set(get_user_model().objects.values_list("password", flat=True))
    assert len(hashes) == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_seeded_users_get_tokens_and_new_rows_get_fresh_ids(api_client):
    seed(*SMALL, "--votes", "12", "--password", "pw-123")
    top_vote = Vote.objects.order_by("-id").first().pk
    response = api_client.post(
        "/api/auth/token/",
        {"username": "user0003", "password": "pw-123"},
        format="json",
    )
    assert response.status_code == 200, response.content

    voter = get_user_model().objects.get(username="user0003")
    voted = set(Vote.objects.filter(user=voter).values_list("question_id", flat=True))
    question = Question.objects.exclude(pk__in=voted).first()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    cast = api_client.post(
        "/api/votes/", {"choice": question.choices.first().pk}, format="json"
    )
    assert cast.status_code == 201, cast.content
    assert cast.json()["id"] > top_vote
    created = api_client.post("/api/questions/", {"question_text": "After seeding?"})
    assert created.status_code == 201
    assert created.json()["id"] > 5
    assert UserFactory().pk > 12


@pytest.mark.postgres
@pytest.mark.django_db
def test_seed_if_empty_leaves_existing_questions_alone():
    QuestionFactory()
    before = row_counts()
    summary = seed(*SMALL, "--votes", "5", "--password", "pw", "--if-empty")
    assert summary["skipped"] is True
    assert row_counts() == before


@pytest.mark.postgres
@pytest.mark.django_db
def test_seed_without_if_empty_adds_to_existing_data():
    QuestionFactory()
    seed(*SMALL, "--votes", "5", "--password", "pw")
    assert row_counts() == {"questions": 6, "choices": 15, "votes": 5}


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--users", "2", "--questions", "3", "--votes", "7", "--password", "p"),
         "each vote needs its own (user, question) pair"),
        (("--users", "2", "--questions", "1", "--choices-per-question", "0",
          "--votes", "1", "--password", "p"), "--choices-per-question"),
        (("--users", "0", "--questions", "1", "--votes", "0"), "--users"),
        (("--users", "3", "--questions", "1", "--votes", "0"), "--password"),
        (("--users", "-1",), "expected zero or more"),
        (("--votes", "many",), "expected a whole number"),
    ],
)  # fmt: skip
def test_seed_with_bad_options_fails_clearly_and_writes_nothing(args, message):
    with pytest.raises(
        CommandError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        call_command("seed_polls", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert row_counts() == {"questions": 0, "choices": 0, "votes": 0}
    assert get_user_model().objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db
def test_seed_refuses_taken_usernames_and_rolls_back():
    UserFactory(username="user0007")
    with pytest.raises(CommandError, match="user0007"):
        seed(*SMALL, "--votes", "5", "--password", "pw")
    assert row_counts() == {"questions": 0, "choices": 0, "votes": 0}
    assert get_user_model().objects.count() == 1


def test_seed_on_embedded_sqlite_uses_the_bulk_path(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "STRANGLER_VAR_DIR"}
    }
    env["STRANGLER_VAR_DIR"] = str(tmp_path)
    manage = [sys.executable, str(REPO / "monolith" / "manage.py")]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*manage, *args], env=env, cwd=REPO, capture_output=True, text=True,
            check=True, timeout=120,
        )  # fmt: skip

    run("migrate", "-v", "0")
    args = ("seed_polls", *SMALL, "--votes", "40", "--password", "pw", "--json")
    result = run(*args)
    assert json.loads(result.stdout)["votes"] == 40
    assert "polls_vote 40/40" in result.stderr
    again = run(*args, "--if-empty")
    assert json.loads(again.stdout)["skipped"] is True
    check = run(
        "shell", "-v", "0", "-c",
        "from monolith.polls.models import Vote, Choice;"
        "from django.db.models import Count;"
        "print(Vote.objects.count(), Choice.objects.count(),"
        " Vote.objects.values('user', 'question').distinct().count())",
    )  # fmt: skip
    assert check.stdout.split() == ["40", "15", "40"]


def _vote_schema() -> tuple[list, list]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'polls_vote'::regclass ORDER BY conname"
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE tablename = 'polls_vote' ORDER BY indexname"
        )
        return constraints, cursor.fetchall()


@pytest.mark.postgres
@pytest.mark.django_db
def test_seed_leaves_the_vote_keys_and_indexes_as_they_were():
    before = _vote_schema()
    seed(*SMALL, "--votes", "20", "--password", "pw")
    assert _vote_schema() == before
    assert len(before[0]) >= 6  # pk, unique, three foreign keys, the composite key
