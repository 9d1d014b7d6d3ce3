"""The dry-run switch: a router-authenticated write runs and is rolled back; without the
router's token it is refused and nothing runs."""

from __future__ import annotations

import pytest

from monolith.polls.models import Question

URL = "/api/questions/"
BODY = {"question_text": "Shadowed?"}


@pytest.fixture(autouse=True)
def router_token(settings):
    settings.STRANGLER_ROUTER_TOKEN = "router-secret"


@pytest.mark.django_db
def test_dry_run_executes_then_rolls_back(auth_client):
    response = auth_client.post(
        URL,
        BODY,
        format="json",
        HTTP_X_STRANGLER_DRY_RUN="1",
        HTTP_X_STRANGLER_ROUTER_TOKEN="router-secret",
    )
    assert response.status_code == 201
    assert response.json()["question_text"] == "Shadowed?"
    assert response["X-Strangler-Dry-Run"] == "rolled-back"
    assert Question.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("token", [None, "wrong"])
def test_dry_run_without_the_router_token_is_refused(auth_client, token):
    extra = {"HTTP_X_STRANGLER_DRY_RUN": "1"}
    if token:
        extra["HTTP_X_STRANGLER_ROUTER_TOKEN"] = token
    response = auth_client.post(URL, BODY, format="json", **extra)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "dry_run_forbidden"
    assert Question.objects.count() == 0


@pytest.mark.django_db
def test_ordinary_writes_are_untouched(auth_client):
    assert auth_client.post(URL, BODY, format="json").status_code == 201
    assert Question.objects.count() == 1
