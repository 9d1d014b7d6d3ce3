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


def applied_here(type_: str, aggregate_id: str, seq: int) -> None:
    """The consumer applied this event to this database (version row, tombstone)."""
    from strangler.consumer.apply import apply_events
    from strangler.consumer.handlers import Handlers
    from strangler.events.envelope import Event

    handlers = Handlers()
    handlers.on(type_)(lambda event: None)
    event = Event(
        type=type_, source="vote", aggregate_id=aggregate_id, seq=seq, data={}
    )
    apply_events([event], handlers)


def fenced_post(client, fence: str = "", overtake: str = ""):
    extra = {
        "HTTP_X_STRANGLER_DRY_RUN": "1",
        "HTTP_X_STRANGLER_ROUTER_TOKEN": "router-secret",
    }
    if fence:
        extra["HTTP_X_STRANGLER_FENCE"] = fence
    if overtake:
        extra["HTTP_X_STRANGLER_OVERTAKE"] = overtake
    return client.post(URL, BODY, format="json", **extra)


@pytest.mark.django_db
def test_a_dry_run_whose_fence_holds_executes_and_names_the_applied_events(
    auth_client,
):
    applied_here("question.created", "5", 2)
    applied_here("question.deleted", "6", 1)
    response = fenced_post(
        auth_client, fence="question:5@2, question:6@9", overtake="question:77@1"
    )
    assert response.status_code == 201
    assert response["X-Strangler-Dry-Run"] == "rolled-back"
    assert response["X-Strangler-Dry-Run-Outcome"] == "executed"
    assert response["X-Strangler-Applied"] == "question:5@2, question:6@9"
    assert Question.objects.count() == 0


@pytest.mark.django_db
def test_a_dry_run_whose_fence_is_not_applied_in_time_does_not_run(
    auth_client, settings
):
    settings.STRANGLER_DRY_RUN_FENCE_SECONDS = 0.2
    applied_here("question.created", "5", 1)
    response = fenced_post(auth_client, fence="question:5@1, question:5@2")
    assert response.status_code == 200
    assert response["X-Strangler-Dry-Run"] == "not-run"
    assert response["X-Strangler-Dry-Run-Outcome"] == "fence-timeout"
    assert response["X-Strangler-Applied"] == "question:5@1"
    assert response.json() == {
        "dry_run": {"outcome": "fence-timeout", "missing": "question:5@2"}
    }


@pytest.mark.django_db
def test_a_dry_run_whose_primary_events_are_already_applied_is_overtaken(
    auth_client,
):
    applied_here("question.created", "8", 1)
    response = fenced_post(auth_client, overtake="question:8@1")
    assert response["X-Strangler-Dry-Run"] == "not-run"
    assert response["X-Strangler-Dry-Run-Outcome"] == "overtaken"
    assert "question_text" not in response.json()


@pytest.mark.django_db
def test_a_malformed_fence_is_refused_and_nothing_runs(auth_client):
    response = fenced_post(auth_client, fence="question:5")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_fence"
