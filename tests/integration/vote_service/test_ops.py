"""The vote service's operational endpoints, schema and JSON errors outside the API."""

from __future__ import annotations

import pytest

from tests.integration.servicehelpers import assert_error

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_healthz_answers_without_touching_the_database(
    client, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_database_reachable(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["databases"] == {"default": "ok"}


def test_metrics_count_requests_per_view(client):
    client.get("/api/votes/")
    body = client.get("/metrics").content.decode()
    assert 'http_requests_total{method="GET",status="200",view="vote-list"}' in body


def test_request_id_is_echoed(client):
    assert client.get("/api/votes/", HTTP_X_REQUEST_ID="r-1")["X-Request-ID"] == "r-1"


def test_schema_describes_only_the_votes_api(client):
    response = client.get(
        "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths) == {"/api/votes/", "/api/votes/{id}/"}
    assert set(paths["/api/votes/{id}/"]) == {"get", "delete"}


def test_unknown_url_is_a_json_404(client):
    assert_error(client.get("/api/questions/"), 404, "not_found")
