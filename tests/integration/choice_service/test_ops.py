"""The choice service's operational endpoints, token settings and schema."""

from __future__ import annotations

import pytest
from django.conf import settings

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_readyz_and_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["databases"] == {"default": "ok"}


def test_metrics_are_served(client):
    client.get("/api/choices/")
    body = client.get("/metrics").content.decode()
    assert 'http_requests_total{method="GET",status="200",view="choice-list"}' in body


def test_settings_hold_no_private_key():
    assert "PRIVATE_KEY_FILE" not in settings.STRANGLER_JWT
    assert settings.STRANGLER_JWT["PUBLIC_KEY_FILE"].endswith("jwt_public.pem")


def test_schema_describes_only_the_choices_api(client):
    response = client.get(
        "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )
    assert set(response.json()["paths"]) == {"/api/choices/", "/api/choices/{id}/"}
