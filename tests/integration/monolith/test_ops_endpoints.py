"""/healthz, /readyz, /metrics and request ids, on the real database."""

from __future__ import annotations

import json
import logging

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_healthz_answers_without_touching_the_database(
    client, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_database_reachable(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["databases"] == {"default": "ok"}


def test_metrics_counts_requests_per_view(client):
    client.get("/healthz")
    body = client.get("/metrics").content.decode()
    assert 'http_requests_total{method="GET",status="200",view="healthz"}' in body
    assert "http_request_duration_seconds_bucket" in body


def test_request_id_is_echoed_when_given(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"


def test_unsafe_request_id_is_replaced_by_a_generated_one(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


def test_log_lines_are_json_with_the_request_id():
    from strangler.web.logging import JsonFormatter
    from strangler.web.request_id import current_request_id

    record = logging.makeLogRecord(
        {
            "name": "monolith.test",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "hello %s",
            "args": ("world",),
            "vote_id": 7,
        }
    )
    token = current_request_id.set("req-42")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        current_request_id.reset(token)
    assert line["request_id"] == "req-42"
    assert line["message"] == "hello world"
    assert line["vote_id"] == 7


def test_unknown_url_gets_a_json_404(client):
    response = client.get("/no/such/place")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
