"""/api/choices/: CRUD by the question's creator, the question filter, and bad input."""

from __future__ import annotations

import pytest

from monolith.polls.models import Choice, Vote
from tests.factories import ChoiceFactory, QuestionFactory, VoteFactory
from tests.integration.monolith.apihelpers import assert_error, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_question_creator_can_add_a_choice(auth_client, question):
    response = auth_client.post(
        "/api/choices/",
        {"question": question.pk, "choice_text": "Maybe"},
        format="json",
    )
    assert response.status_code == 201, response.content
    choice = Choice.objects.get(choice_text="Maybe")
    assert response.json() == {
        "id": choice.pk,
        "question": question.pk,
        "choice_text": "Maybe",
    }


def test_non_creator_cannot_add_a_choice(other_client, question):
    before = row_counts()
    response = other_client.post(
        "/api/choices/", {"question": question.pk, "choice_text": "Me"}, format="json"
    )
    assert_error(response, 403, "permission_denied")
    assert row_counts() == before


def test_add_choice_without_token_returns_401(api_client, question):
    before = row_counts()
    response = api_client.post(
        "/api/choices/", {"question": question.pk, "choice_text": "x"}, format="json"
    )
    assert_error(response, 401, "not_authenticated")
    assert row_counts() == before


def test_retrieve_choice_is_public(api_client, question):
    choice = question.choices.first()
    response = api_client.get(f"/api/choices/{choice.pk}/")
    assert response.status_code == 200
    assert response.json() == {
        "id": choice.pk,
        "question": question.pk,
        "choice_text": choice.choice_text,
    }


def test_list_choices_filters_by_question_in_two_queries(
    api_client, question, django_assert_num_queries
):
    ChoiceFactory.create_batch(2)
    with django_assert_num_queries(2):
        response = api_client.get(f"/api/choices/?question={question.pk}")
    assert response.status_code == 200
    body = response.json()
    expected = list(question.choices.order_by("id").values_list("id", flat=True))
    assert body["count"] == 3
    assert [c["id"] for c in body["results"]] == expected


def test_list_choices_without_filter_returns_all(api_client, question):
    ChoiceFactory.create_batch(2)
    assert api_client.get("/api/choices/").json()["count"] == 5


def test_choice_filter_matching_nothing_returns_an_empty_page(api_client, question):
    response = api_client.get("/api/choices/?question=999999")
    assert response.status_code == 200
    assert response.json()["results"] == []
    assert response.json()["count"] == 0


@pytest.mark.parametrize("value", ["abc", "1.5", "", "1;drop", "99999999999999999999x"])
def test_non_integer_question_filter_returns_400_naming_it(api_client, value):
    response = api_client.get("/api/choices/", {"question": value})
    assert_error(response, 400, "invalid", "question")


def test_creator_can_rename_a_choice(auth_client, question):
    choice = question.choices.first()
    response = auth_client.patch(
        f"/api/choices/{choice.pk}/", {"choice_text": "Renamed"}, format="json"
    )
    assert response.status_code == 200, response.content
    choice.refresh_from_db()
    assert choice.choice_text == "Renamed"


def test_creator_can_put_a_choice_keeping_its_question(auth_client, question):
    choice = question.choices.first()
    response = auth_client.put(
        f"/api/choices/{choice.pk}/",
        {"question": question.pk, "choice_text": "Put"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["choice_text"] == "Put"


def test_moving_a_choice_to_another_question_returns_400(auth_client, question):
    choice = question.choices.first()
    elsewhere = QuestionFactory(created_by=auth_client.user)
    response = auth_client.patch(
        f"/api/choices/{choice.pk}/", {"question": elsewhere.pk}, format="json"
    )
    assert_error(response, 400, "invalid", "question")
    choice.refresh_from_db()
    assert choice.question_id == question.pk


def test_non_creator_cannot_update_or_delete_a_choice(other_client, question):
    choice = question.choices.first()
    response = other_client.patch(
        f"/api/choices/{choice.pk}/", {"choice_text": "Mine"}, format="json"
    )
    assert_error(response, 403, "permission_denied")
    assert_error(
        other_client.delete(f"/api/choices/{choice.pk}/"), 403, "permission_denied"
    )
    choice.refresh_from_db()
    assert choice.choice_text != "Mine"


def test_delete_choice_takes_its_votes(auth_client, question):
    choice, kept = question.choices.order_by("id")[:2]
    VoteFactory(choice=choice)
    kept_vote = VoteFactory(choice=kept)
    response = auth_client.delete(f"/api/choices/{choice.pk}/")
    assert response.status_code == 204
    assert not Choice.objects.filter(pk=choice.pk).exists()
    assert list(Vote.objects.all()) == [kept_vote]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"choice_text": "no question"}, "question"),
        ({"question": 999999, "choice_text": "x"}, "question"),
        ({"question": True, "choice_text": "x"}, "question"),
        ({"question": 1.0, "choice_text": "x"}, "question"),
        ({"question": None, "choice_text": "x"}, "question"),
        ({"question": "QUESTION_ID_AS_STRING", "choice_text": "x"}, "question"),
        ({"question": "QUESTION"}, "choice_text"),
        ({"question": "QUESTION", "choice_text": "c" * 201}, "choice_text"),
        ({"question": "QUESTION", "choice_text": 7}, "choice_text"),
    ],
)
def test_create_choice_with_bad_body_returns_400_and_writes_nothing(
    auth_client, question, body, field
):
    substitutes = {"QUESTION": question.pk, "QUESTION_ID_AS_STRING": str(question.pk)}
    body = {key: substitutes.get(value, value) for key, value in body.items()}
    before = row_counts()
    response = auth_client.post("/api/choices/", body, format="json")
    assert_error(response, 400, "invalid", field)
    assert row_counts() == before


def test_unknown_choice_id_in_url_returns_404(api_client, auth_client):
    assert_error(api_client.get("/api/choices/999999/"), 404, "not_found")
    assert_error(auth_client.delete("/api/choices/999999/"), 404, "not_found")
