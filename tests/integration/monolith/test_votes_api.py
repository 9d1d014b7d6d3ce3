"""/api/votes/: cast, one per user per question, list filters, delete-own, no update."""

from __future__ import annotations

import re

import pytest

from monolith.polls.models import Vote
from tests.factories import ChoiceFactory, VoteFactory
from tests.integration.monolith.apihelpers import assert_error, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_vote_cast_records_caller_and_question(auth_client, question):
    choice = question.choices.last()
    response = auth_client.post("/api/votes/", {"choice": choice.pk}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    vote = Vote.objects.get()
    assert body == {
        "id": vote.pk,
        "choice": choice.pk,
        "question": question.pk,
        "user": auth_client.user.pk,
        "created_at": body["created_at"],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", body["created_at"])
    assert (vote.user_id, vote.question_id) == (auth_client.user.pk, question.pk)


def test_vote_cast_twice_returns_409(auth_client, question):
    first, second = question.choices.order_by("id")[:2]
    assert auth_client.post("/api/votes/", {"choice": first.pk}).status_code == 201
    response = auth_client.post("/api/votes/", {"choice": second.pk}, format="json")
    error = assert_error(response, 409, "already_voted")
    assert "already voted" in error["message"]
    assert list(Vote.objects.values_list("choice_id", flat=True)) == [first.pk]


def test_same_user_can_vote_on_different_questions(auth_client, question):
    other_choice = ChoiceFactory()
    choice = question.choices.first()
    assert auth_client.post("/api/votes/", {"choice": choice.pk}).status_code == 201
    assert (
        auth_client.post("/api/votes/", {"choice": other_choice.pk}).status_code == 201
    )
    assert Vote.objects.filter(user=auth_client.user).count() == 2


def test_vote_without_token_returns_401(api_client, question):
    response = api_client.post(
        "/api/votes/", {"choice": question.choices.first().pk}, format="json"
    )
    assert_error(response, 401, "not_authenticated")
    assert Vote.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"choice": 999999},
        {"choice": "CHOICE_AS_STRING"},
        {"choice": None},
        {"choice": False},
        {"choice": [1]},
        {"choice": {"id": 1}},
    ],
)
def test_vote_with_bad_choice_returns_400_naming_choice(auth_client, question, body):
    if body.get("choice") == "CHOICE_AS_STRING":
        body = {"choice": str(question.choices.first().pk)}
    before = row_counts()
    response = auth_client.post("/api/votes/", body, format="json")
    assert_error(response, 400, "invalid", "choice")
    assert row_counts() == before


def test_vote_with_malformed_json_returns_400(auth_client):
    response = auth_client.generic(
        "POST", "/api/votes/", "{choice: 1}", content_type="application/json"
    )
    assert_error(response, 400, "parse_error")
    assert Vote.objects.count() == 0


def test_retrieve_vote_is_public(api_client):
    vote = VoteFactory()
    response = api_client.get(f"/api/votes/{vote.pk}/")
    assert response.status_code == 200
    assert response.json()["user"] == vote.user_id


def test_voter_can_retract_their_vote(auth_client, question):
    vote = VoteFactory(user=auth_client.user, choice=question.choices.first())
    response = auth_client.delete(f"/api/votes/{vote.pk}/")
    assert response.status_code == 204
    assert Vote.objects.count() == 0
    again = auth_client.post("/api/votes/", {"choice": question.choices.last().pk})
    assert again.status_code == 201


def test_deleting_another_users_vote_returns_403(auth_client):
    vote = VoteFactory()
    response = auth_client.delete(f"/api/votes/{vote.pk}/")
    assert_error(response, 403, "permission_denied")
    assert Vote.objects.filter(pk=vote.pk).exists()


@pytest.mark.parametrize("method", ["put", "patch"])
def test_votes_cannot_be_updated(auth_client, question, method):
    vote = VoteFactory(user=auth_client.user, choice=question.choices.first())
    other = question.choices.last()
    response = getattr(auth_client, method)(
        f"/api/votes/{vote.pk}/", {"choice": other.pk}, format="json"
    )
    assert_error(response, 405, "method_not_allowed")
    vote.refresh_from_db()
    assert vote.choice_id == question.choices.first().pk


def test_unknown_vote_id_returns_404(api_client, auth_client):
    assert_error(api_client.get("/api/votes/999999/"), 404, "not_found")
    assert_error(auth_client.delete("/api/votes/999999/"), 404, "not_found")


@pytest.fixture
def ballots(db):
    """Two questions with two choices each, and votes spread over three users."""
    from tests.factories import QuestionFactory, UserFactory

    q1, q2 = QuestionFactory.create_batch(2)
    a1, a2 = ChoiceFactory.create_batch(2, question=q1)
    b1, _ = ChoiceFactory.create_batch(2, question=q2)
    alice, bob, carol = UserFactory.create_batch(3)
    votes = [
        VoteFactory(choice=a1, user=alice),
        VoteFactory(choice=a2, user=bob),
        VoteFactory(choice=a1, user=carol),
        VoteFactory(choice=b1, user=alice),
    ]
    return {"q1": q1, "a1": a1, "b1": b1, "alice": alice, "votes": votes}


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [vote["id"] for vote in response.json()["results"]]


def test_votes_list_filters_combine(api_client, ballots, django_assert_num_queries):
    votes = ballots["votes"]
    with django_assert_num_queries(2):
        response = api_client.get("/api/votes/", {"choice": ballots["a1"].pk})
    assert _ids(response) == [votes[0].pk, votes[2].pk]
    by_question = api_client.get("/api/votes/", {"question": ballots["q1"].pk})
    assert _ids(by_question) == [v.pk for v in votes[:3]]
    by_user = api_client.get("/api/votes/", {"user": ballots["alice"].pk})
    assert _ids(by_user) == [votes[0].pk, votes[3].pk]
    both = api_client.get(
        "/api/votes/", {"user": ballots["alice"].pk, "question": ballots["q1"].pk}
    )
    assert _ids(both) == [votes[0].pk]
    assert _ids(api_client.get("/api/votes/", {"user": 999999})) == []


@pytest.mark.parametrize("param", ["choice", "question", "user"])
def test_votes_list_non_integer_filter_returns_400_naming_it(api_client, param):
    response = api_client.get("/api/votes/", {param: "one"})
    error = assert_error(response, 400, "invalid", param)
    assert param in error["message"]


def test_votes_list_filter_with_huge_id_is_an_empty_page(api_client, ballots):
    assert _ids(api_client.get("/api/votes/", {"user": "9" * 30})) == []
