"""The monolith's /_strangler/internal/events endpoint (the reverse path over HTTP)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from strangler.consumer.models import DeadLetter
from strangler.events.http import PATH, internal_token

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def envelope(type_: str, aggregate_id: int, data: dict) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": type_,
        "source": "vote",
        "aggregate_id": str(aggregate_id),
        "seq": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": data,
    }


def post(client, events: list[dict]):
    return client.post(
        f"/{PATH}",
        {"events": events},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {internal_token()}",
    )


def test_events_outside_the_configured_bindings_are_ignored_not_dead_lettered(
    client, settings
):
    settings.STRANGLER_CONSUMER = {
        **settings.STRANGLER_CONSUMER,
        "BINDINGS": ["choice.*"],
    }
    response = post(client, [envelope("vote.deleted", 12345, {"id": 12345})])
    assert response.status_code == 200, response.content
    assert response.json()["results"]["ignored"] == 1
    assert DeadLetter.objects.count() == 0


def test_without_configured_bindings_every_handled_entity_is_accepted(client, settings):
    settings.STRANGLER_CONSUMER = {
        k: v for k, v in settings.STRANGLER_CONSUMER.items() if k != "BINDINGS"
    }
    response = post(client, [envelope("vote.deleted", 12345, {"id": 12345})])
    assert response.status_code == 200, response.content
    assert response.json()["results"]["ignored"] == 0
    assert DeadLetter.objects.count() == 0


def test_the_endpoint_refuses_a_missing_token(client):
    response = client.post(f"/{PATH}", {"events": []}, content_type="application/json")
    assert response.status_code == 401
