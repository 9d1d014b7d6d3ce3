"""``X-Strangler-Events``: a write reports the events its transaction committed, only to the
router (its token), and an event rolled back with its change is never reported."""

from __future__ import annotations

import pytest
from django.db import transaction

from strangler.dualwrite.emitted import collecting
from strangler.dualwrite.modes import set_mode
from strangler.dualwrite.outbox import emit
from strangler.events.refs import EventRef, parse_refs
from tests.factories import ChoiceFactory

TOKEN = {"HTTP_X_STRANGLER_ROUTER_TOKEN": "router-secret"}


@pytest.fixture(autouse=True)
def router_token(settings):
    settings.STRANGLER_ROUTER_TOKEN = "router-secret"


@pytest.fixture
def forward(transactional_db):
    set_mode("vote", "forward")


def test_a_vote_cast_and_retracted_reports_each_event_to_the_router(
    auth_client, forward
):
    choice = ChoiceFactory()
    cast = auth_client.post(
        "/api/votes/", {"choice": choice.pk}, format="json", **TOKEN
    )
    assert cast.status_code == 201, cast.content
    vote = cast.json()["id"]
    assert parse_refs(cast["X-Strangler-Events"]) == [EventRef("vote", str(vote), 1)]
    gone = auth_client.delete(f"/api/votes/{vote}/", **TOKEN)
    assert gone.status_code == 204
    assert parse_refs(gone["X-Strangler-Events"]) == [EventRef("vote", str(vote), 2)]


def test_clients_without_the_router_token_never_see_the_events(auth_client, forward):
    choice = ChoiceFactory()
    for extra in ({}, {"HTTP_X_STRANGLER_ROUTER_TOKEN": "guess"}):
        cast = auth_client.post(
            "/api/votes/", {"choice": choice.pk}, format="json", **extra
        )
        assert cast.status_code in (201, 409)
        assert "X-Strangler-Events" not in cast


def test_a_refused_write_reports_nothing(auth_client, forward):
    choice = ChoiceFactory()
    auth_client.post("/api/votes/", {"choice": choice.pk}, format="json")
    again = auth_client.post(
        "/api/votes/", {"choice": choice.pk}, format="json", **TOKEN
    )
    assert again.status_code == 409
    assert "X-Strangler-Events" not in again


def test_only_events_whose_transaction_committed_are_collected(forward):
    with collecting() as refs:
        with pytest.raises(RuntimeError), transaction.atomic():
            emit(entity="vote", type="vote.created", aggregate_id=1, data={})
            raise RuntimeError("rolled back")
        with transaction.atomic():
            with pytest.raises(RuntimeError), transaction.atomic():
                emit(entity="vote", type="vote.created", aggregate_id=2, data={})
                raise RuntimeError("savepoint rolled back")
            emit(entity="vote", type="vote.created", aggregate_id=3, data={})
            assert refs == []  # not before the commit
    assert refs == [EventRef("vote", "3", 1)]
    with transaction.atomic():
        emit(entity="vote", type="vote.created", aggregate_id=4, data={})
    assert refs == [EventRef("vote", "3", 1)]  # outside the collection
