"""Pagination of every list (size, stable order, absolute links, past the end) and the schema."""

from __future__ import annotations

import pytest

from tests.factories import ChoiceFactory, QuestionFactory, VoteFactory
from tests.integration.monolith.apihelpers import assert_error

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def questions(db):
    return QuestionFactory.create_batch(5)


def test_page_size_splits_the_list_in_id_order(api_client, questions):
    ids = sorted(question.pk for question in questions)
    first = api_client.get("/api/questions/", {"page_size": 2}).json()
    second = api_client.get("/api/questions/", {"page_size": 2, "page": 2}).json()
    last = api_client.get("/api/questions/", {"page_size": 2, "page": 3}).json()
    assert first["count"] == 5
    seen = [q["id"] for page in (first, second, last) for q in page["results"]]
    assert seen == ids
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/questions/?page=2&page_size=2"
    assert last["next"] is None


def test_default_page_size_is_20_and_max_is_100(api_client):
    ChoiceFactory.create_batch(105, question=QuestionFactory())
    assert len(api_client.get("/api/choices/").json()["results"]) == 20
    big = api_client.get("/api/choices/", {"page_size": 1000}).json()
    assert len(big["results"]) == 100


def test_page_past_the_end_returns_404(api_client, questions):
    response = api_client.get("/api/questions/", {"page": 99})
    assert_error(response, 404, "not_found")


def test_next_link_honours_forwarded_host(api_client, questions, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "polls.example.com"]
    body = api_client.get(
        "/api/questions/", {"page_size": 2}, HTTP_X_FORWARDED_HOST="polls.example.com"
    ).json()
    assert body["next"].startswith("http://polls.example.com/api/questions/")


def test_vote_pages_keep_filters_in_links(api_client):
    question = QuestionFactory()
    choice = ChoiceFactory(question=question)
    VoteFactory.create_batch(3, choice=choice)
    VoteFactory()
    body = api_client.get(
        "/api/votes/", {"question": question.pk, "page_size": 2}
    ).json()
    assert body["count"] == 3
    assert f"question={question.pk}" in body["next"]


def test_vote_list_costs_two_queries_however_many_rows(
    api_client, django_assert_num_queries
):
    VoteFactory.create_batch(25)
    with django_assert_num_queries(2):
        response = api_client.get("/api/votes/", {"page_size": 25})
    assert len(response.json()["results"]) == 25


def test_schema_generates_with_every_polls_path(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in (
        "/api/questions/",
        "/api/questions/{id}/",
        "/api/questions/{id}/results/",
        "/api/choices/",
        "/api/choices/{id}/",
        "/api/votes/",
        "/api/votes/{id}/",
    ):
        assert path in paths, sorted(paths)
    assert "put" not in paths["/api/votes/{id}/"]
    vote_filters = {p["name"] for p in paths["/api/votes/"]["get"]["parameters"]}
    assert {"choice", "question", "user", "page", "page_size"} <= vote_filters
    results = schema["components"]["schemas"]["QuestionResults"]
    assert set(results["properties"]) == {
        "id",
        "question_text",
        "total_votes",
        "choices",
    }


def test_schema_documents_the_bearer_jwt_scheme_on_writes(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    scheme = schema["components"]["securitySchemes"]["bearerJWT"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == (
        "http",
        "bearer",
        "JWT",
    )
    assert {"bearerJWT": []} in schema["paths"]["/api/votes/"]["post"]["security"]
