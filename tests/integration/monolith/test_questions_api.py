"""/api/questions/: CRUD, creator-only writes, results, and bad input that writes nothing."""

from __future__ import annotations

import re

import pytest

from monolith.polls.models import Choice, Question, Vote
from tests.factories import ChoiceFactory, QuestionFactory, VoteFactory
from tests.integration.monolith.apihelpers import assert_error, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

UTC_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def test_create_question_sets_creator_to_caller(auth_client):
    response = auth_client.post(
        "/api/questions/", {"question_text": "Tabs or spaces?"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    question = Question.objects.get()
    assert body == {
        "id": question.pk,
        "question_text": "Tabs or spaces?",
        "pub_date": body["pub_date"],
        "created_by": auth_client.user.pk,
    }
    assert question.created_by_id == auth_client.user.pk
    assert UTC_TIMESTAMP.match(body["pub_date"]), body["pub_date"]


def test_create_question_converts_given_pub_date_to_utc_with_z(auth_client):
    response = auth_client.post(
        "/api/questions/",
        {"question_text": "When?", "pub_date": "2026-11-28T02:00:00.123456+02:00"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["pub_date"] == "2026-11-28T00:00:00.123456Z"


def test_created_by_in_body_is_ignored(auth_client, other_client):
    response = auth_client.post(
        "/api/questions/",
        {"question_text": "Mine?", "created_by": other_client.user.pk},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["created_by"] == auth_client.user.pk


def test_retrieve_question_is_public(api_client, question):
    response = api_client.get(f"/api/questions/{question.pk}/")
    assert response.status_code == 200
    assert response.json()["question_text"] == question.question_text


def test_list_questions_is_ordered_by_id_in_two_queries(
    api_client, django_assert_num_queries
):
    created = QuestionFactory.create_batch(3)
    with django_assert_num_queries(2):
        response = api_client.get("/api/questions/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [q["id"] for q in body["results"]] == sorted(q.pk for q in created)


def test_creator_can_patch_question_text(auth_client, question):
    response = auth_client.patch(
        f"/api/questions/{question.pk}/", {"question_text": "Edited"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["question_text"] == "Edited"
    question.refresh_from_db()
    assert question.question_text == "Edited"


def test_creator_can_put_question(auth_client, question):
    response = auth_client.put(
        f"/api/questions/{question.pk}/",
        {"question_text": "Replaced", "pub_date": "2030-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["pub_date"] == "2030-01-01T00:00:00Z"
    question.refresh_from_db()
    assert question.question_text == "Replaced"


def test_non_creator_cannot_update_question(other_client, question):
    response = other_client.patch(
        f"/api/questions/{question.pk}/", {"question_text": "Hijacked"}, format="json"
    )
    assert_error(response, 403, "permission_denied")
    question.refresh_from_db()
    assert question.question_text != "Hijacked"


def test_non_creator_cannot_delete_question(other_client, question):
    response = other_client.delete(f"/api/questions/{question.pk}/")
    assert_error(response, 403, "permission_denied")
    assert Question.objects.filter(pk=question.pk).exists()


def test_delete_question_takes_its_choices_and_votes(auth_client, question):
    VoteFactory(choice=question.choices.first())
    other = ChoiceFactory()
    response = auth_client.delete(f"/api/questions/{question.pk}/")
    assert response.status_code == 204
    assert not Question.objects.filter(pk=question.pk).exists()
    assert list(Choice.objects.all()) == [other]
    assert Vote.objects.count() == 0


def test_create_question_without_token_returns_401(api_client):
    response = api_client.post("/api/questions/", {"question_text": "x"}, format="json")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert Question.objects.count() == 0


def test_unknown_question_id_returns_404(api_client):
    assert_error(api_client.get("/api/questions/999999/"), 404, "not_found")
    assert_error(api_client.get("/api/questions/abc/"), 404, "not_found")


def test_update_unknown_question_returns_404(auth_client):
    response = auth_client.patch(
        "/api/questions/999999/", {"question_text": "x"}, format="json"
    )
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "question_text"),
        ({"question_text": ""}, "question_text"),
        ({"question_text": "   "}, "question_text"),
        ({"question_text": "x" * 201}, "question_text"),
        ({"question_text": 42}, "question_text"),
        ({"question_text": ["a"]}, "question_text"),
        ({"question_text": None}, "question_text"),
        ({"question_text": "ok", "pub_date": "yesterday"}, "pub_date"),
        ({"question_text": "ok", "pub_date": 5}, "pub_date"),
    ],
)
def test_create_question_with_bad_body_returns_400_and_writes_nothing(
    auth_client, body, field
):
    before = row_counts()
    response = auth_client.post("/api/questions/", body, format="json")
    assert_error(response, 400, "invalid", field)
    assert row_counts() == before


def test_create_question_with_200_chars_is_accepted(auth_client):
    response = auth_client.post(
        "/api/questions/", {"question_text": "x" * 200}, format="json"
    )
    assert response.status_code == 201


def test_create_question_with_malformed_json_returns_400_parse_error(auth_client):
    response = auth_client.generic(
        "POST",
        "/api/questions/",
        '{"question_text": "oops",',
        content_type="application/json",
    )
    assert_error(response, 400, "parse_error")
    assert Question.objects.count() == 0


def test_create_question_with_json_array_body_returns_400(auth_client):
    response = auth_client.post("/api/questions/", ["x"], format="json")
    assert_error(response, 400, "invalid", "non_field_errors")
    assert Question.objects.count() == 0


def test_patch_question_with_over_long_text_changes_nothing(auth_client, question):
    response = auth_client.patch(
        f"/api/questions/{question.pk}/", {"question_text": "y" * 201}, format="json"
    )
    assert_error(response, 400, "invalid", "question_text")
    question.refresh_from_db()
    assert len(question.question_text) <= 200


def test_results_count_votes_per_choice_in_one_query(
    api_client, question, django_assert_num_queries
):
    first, second, third = question.choices.order_by("id")
    VoteFactory.create_batch(2, choice=first)
    VoteFactory(choice=third)
    VoteFactory()  # a vote on another question must not count
    # The first request also reads the dual-write modes (cached for a second) to learn
    # that the monolith owns votes and choices; the results themselves are one query.
    api_client.get(f"/api/questions/{question.pk}/results/")
    with django_assert_num_queries(1):
        response = api_client.get(f"/api/questions/{question.pk}/results/")
    assert response.status_code == 200
    assert response.json() == {
        "id": question.pk,
        "question_text": question.question_text,
        "total_votes": 3,
        "choices": [
            {"id": first.pk, "choice_text": first.choice_text, "votes": 2},
            {"id": second.pk, "choice_text": second.choice_text, "votes": 0},
            {"id": third.pk, "choice_text": third.choice_text, "votes": 1},
        ],
    }


def test_results_of_question_without_choices_is_empty(api_client):
    question = QuestionFactory()
    response = api_client.get(f"/api/questions/{question.pk}/results/")
    assert response.status_code == 200
    assert response.json()["choices"] == []
    assert response.json()["total_votes"] == 0


def test_results_of_unknown_question_returns_404(api_client):
    assert_error(api_client.get("/api/questions/999999/results/"), 404, "not_found")
    assert_error(api_client.get("/api/questions/x/results/"), 404, "not_found")
