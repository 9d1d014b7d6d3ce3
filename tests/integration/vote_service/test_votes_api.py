"""/api/votes/ on the vote service: the monolith's contract, on the service's own database."""

from __future__ import annotations

import re

import pytest

from extracted.vote_service.votes.models import Vote
from strangler.dualwrite.modes import get_mode, set_mode
from tests.integration.servicehelpers import assert_error, bearer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def test_cast_vote_records_the_callers_vote_on_the_choices_question(
    api_client, make_choice
):
    make_choice(3, 1)
    response = api_client.post("/api/votes/", {"choice": 3}, format="json", **bearer(7))
    assert response.status_code == 201, response.content
    body = response.json()
    vote = Vote.objects.get()
    assert body == {
        "id": vote.pk,
        "choice": 3,
        "question": 1,
        "user": 7,
        "created_at": body["created_at"],
    }
    assert TIMESTAMP.match(body["created_at"])
    assert (vote.choice_id, vote.question_id, vote.user_id) == (3, 1, 7)


def test_second_vote_on_the_same_question_is_409_and_writes_nothing(
    api_client, make_choice
):
    make_choice(3, 1)
    make_choice(4, 1)
    assert (
        api_client.post(
            "/api/votes/", {"choice": 3}, format="json", **bearer(7)
        ).status_code
        == 201
    )
    response = api_client.post("/api/votes/", {"choice": 4}, format="json", **bearer(7))
    error = assert_error(response, 409, "already_voted")
    assert error["message"] == "You have already voted on this question."
    assert list(Vote.objects.values_list("choice_id", flat=True)) == [3]


def test_other_users_may_vote_on_the_same_question(api_client, make_choice):
    make_choice(3, 1)
    for user_id in (7, 8):
        response = api_client.post(
            "/api/votes/", {"choice": 3}, format="json", **bearer(user_id)
        )
        assert response.status_code == 201
    assert Vote.objects.count() == 2


def test_vote_for_a_choice_unknown_to_the_projection_is_400_naming_choice(
    api_client, make_choice
):
    make_choice(3, 1)
    response = api_client.post(
        "/api/votes/", {"choice": 99}, format="json", **bearer(7)
    )
    error = assert_error(response, 400, "invalid", field="choice")
    assert error["fields"]["choice"] == ['Invalid pk "99" - object does not exist.']
    assert not Vote.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "This field is required."),
        ({"choice": None}, "This field may not be null."),
        ({"choice": "3"}, "Incorrect type. Expected pk value, received str."),
        ({"choice": 3.0}, "Incorrect type. Expected pk value, received float."),
        ({"choice": True}, "Incorrect type. Expected pk value, received bool."),
        ({"choice": [3]}, "Incorrect type. Expected pk value, received list."),
        ({"choice": 2**70}, f'Invalid pk "{2**70}" - object does not exist.'),
    ],
)
def test_bad_choice_values_are_400_and_write_nothing(
    api_client, make_choice, body, message
):
    make_choice(3, 1)
    response = api_client.post("/api/votes/", body, format="json", **bearer(7))
    error = assert_error(response, 400, "invalid", field="choice")
    assert error["fields"]["choice"] == [message]
    assert not Vote.objects.exists()


def test_malformed_json_is_400_parse_error(api_client, make_choice):
    make_choice(3, 1)
    response = api_client.post(
        "/api/votes/", '{"choice": 3', content_type="application/json", **bearer(7)
    )
    assert_error(response, 400, "parse_error")
    assert not Vote.objects.exists()


def test_a_body_that_is_not_an_object_is_400(api_client, make_choice):
    make_choice(3, 1)
    response = api_client.post("/api/votes/", [3], format="json", **bearer(7))
    assert_error(response, 400, "invalid", field="non_field_errors")
    assert not Vote.objects.exists()


def test_list_is_paginated_in_id_order_with_absolute_links(api_client, make_vote):
    votes = [make_vote(choice_id=3, question_id=q, user_id=7) for q in range(1, 6)]
    response = api_client.get(
        "/api/votes/?page_size=2&page=2", HTTP_X_FORWARDED_HOST="localhost:8080"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5
    assert [vote["id"] for vote in body["results"]] == [v.pk for v in votes[2:4]]
    assert body["next"] == "http://localhost:8080/api/votes/?page=3&page_size=2"
    assert body["previous"] == "http://localhost:8080/api/votes/?page_size=2"


def test_page_size_is_capped_at_100(api_client, make_vote):
    for question_id in range(1, 103):
        make_vote(choice_id=3, question_id=question_id, user_id=7)
    body = api_client.get("/api/votes/?page_size=500").json()
    assert len(body["results"]) == 100
    assert body["count"] == 102


def test_default_page_size_is_20(api_client, make_vote):
    for question_id in range(1, 22):
        make_vote(choice_id=3, question_id=question_id, user_id=7)
    body = api_client.get("/api/votes/").json()
    assert len(body["results"]) == 20
    assert body["next"] is not None


def test_page_past_the_end_is_404(api_client, make_vote):
    make_vote(choice_id=3, question_id=1, user_id=7)
    assert_error(api_client.get("/api/votes/?page=2"), 404, "not_found")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("choice=3", [(3, 1, 7), (3, 1, 8)]),
        ("question=2", [(5, 2, 7)]),
        ("user=8", [(3, 1, 8)]),
        ("choice=3&user=7", [(3, 1, 7)]),
        ("choice=42", []),
    ],
)
def test_filters_select_by_integer_id(api_client, make_vote, query, expected):
    make_vote(choice_id=3, question_id=1, user_id=7)
    make_vote(choice_id=3, question_id=1, user_id=8)
    make_vote(choice_id=5, question_id=2, user_id=7)
    response = api_client.get(f"/api/votes/?{query}")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(v["choice"], v["question"], v["user"]) for v in results] == expected


@pytest.mark.parametrize("param", ["choice", "question", "user"])
@pytest.mark.parametrize("value", ["abc", "1.5", "", "1e3"])
def test_non_integer_filter_is_400_naming_the_parameter(api_client, param, value):
    response = api_client.get(f"/api/votes/?{param}={value}")
    error = assert_error(response, 400, "invalid", field=param)
    assert error["fields"][param] == [f"Must be an integer id, got {value!r}."]


def test_retrieve_returns_the_vote(api_client, make_vote):
    vote = make_vote(choice_id=3, question_id=1, user_id=7)
    response = api_client.get(f"/api/votes/{vote.pk}/")
    assert response.status_code == 200
    assert response.json()["id"] == vote.pk
    assert response.json()["user"] == 7


@pytest.mark.parametrize("vote_id", ["999999", "abc", str(2**70)])
def test_retrieve_unknown_id_is_404(api_client, vote_id):
    assert_error(api_client.get(f"/api/votes/{vote_id}/"), 404, "not_found")


def test_voter_can_retract_their_vote(api_client, make_vote):
    vote = make_vote(choice_id=3, question_id=1, user_id=7)
    response = api_client.delete(f"/api/votes/{vote.pk}/", **bearer(7))
    assert response.status_code == 204
    assert not Vote.objects.exists()


def test_retracting_someone_elses_vote_is_403_and_keeps_it(api_client, make_vote):
    vote = make_vote(choice_id=3, question_id=1, user_id=7)
    response = api_client.delete(f"/api/votes/{vote.pk}/", **bearer(8))
    error = assert_error(response, 403, "permission_denied")
    assert error["message"] == "You can only delete your own vote."
    assert Vote.objects.filter(pk=vote.pk).exists()


def test_retracting_without_a_token_is_401(api_client, make_vote):
    vote = make_vote(choice_id=3, question_id=1, user_id=7)
    response = api_client.delete(f"/api/votes/{vote.pk}/")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert Vote.objects.filter(pk=vote.pk).exists()


@pytest.mark.parametrize("method", ["put", "patch"])
def test_votes_cannot_be_changed(api_client, make_vote, make_choice, method):
    make_choice(4, 1)
    vote = make_vote(choice_id=3, question_id=1, user_id=7)
    response = getattr(api_client, method)(
        f"/api/votes/{vote.pk}/", {"choice": 4}, format="json", **bearer(7)
    )
    assert_error(response, 405, "method_not_allowed")
    assert Vote.objects.get().choice_id == 3


def test_list_takes_two_queries_whatever_the_page_size(
    api_client, make_vote, django_assert_num_queries
):
    for question_id in range(1, 31):
        make_vote(choice_id=3, question_id=question_id, user_id=7)
    with django_assert_num_queries(2):
        response = api_client.get("/api/votes/?page_size=30&user=7")
    assert len(response.json()["results"]) == 30


def test_retrieve_takes_one_query(api_client, make_vote, django_assert_num_queries):
    vote = make_vote(choice_id=3, question_id=1, user_id=7)
    with django_assert_num_queries(1):
        api_client.get(f"/api/votes/{vote.pk}/")


def test_cast_takes_a_fixed_number_of_queries(
    api_client, make_choice, django_assert_num_queries
):
    make_choice(3, 1)
    headers = bearer(7)
    set_mode("vote", "forward")
    get_mode("vote")  # modes are cached for a second; a steady-state request reads none
    # choice lookup in the serializer, its question in the service, the insert, the outbox
    # insert, and the two savepoints (service transaction and the insert's) each created
    # and released
    with django_assert_num_queries(8):
        response = api_client.post(
            "/api/votes/", {"choice": 3}, format="json", **headers
        )
    assert response.status_code == 201
