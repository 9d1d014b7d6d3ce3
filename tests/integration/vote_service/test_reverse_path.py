"""The vote service as a producer: its writes record events in its own outbox (the reverse
path to the monolith), refuse to run while the monolith owns votes, and continue the seq of
votes it first knew from the monolith's events."""

from __future__ import annotations

import pytest

from extracted.vote_service.votes import services
from extracted.vote_service.votes.handlers import handlers
from extracted.vote_service.votes.models import Vote
from strangler.consumer.apply import apply_events
from strangler.dualwrite.models import OutboxEvent
from strangler.dualwrite.modes import set_mode
from strangler.events import Event
from tests.integration.servicehelpers import assert_error, bearer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def outbox() -> list[tuple[str, str, int, dict]]:
    return [
        (row.type, row.aggregate_id, row.seq, row.envelope)
        for row in OutboxEvent.objects.order_by("id")
    ]


def test_cast_and_retract_publish_the_vote_in_the_apis_field_names(make_choice):
    set_mode("vote", "forward")
    make_choice(3, 1)
    vote = services.vote_cast(user_id=7, choice_id=3)
    vote_id = vote.pk
    services.vote_retract(vote=vote)
    (created_type, created_id, created_seq, created), deleted = outbox()
    assert (created_type, created_id, created_seq) == ("vote.created", str(vote_id), 1)
    assert created["source"] == "vote"
    assert created["data"] == {
        "id": vote_id,
        "choice": 3,
        "question": 1,
        "user": 7,
        "created_at": created["data"]["created_at"],
    }
    assert deleted[:3] == ("vote.deleted", str(vote_id), 2)
    assert deleted[3]["data"] == created["data"]


def test_while_the_monolith_owns_votes_the_api_answers_409_and_writes_nothing(
    api_client, make_choice, make_vote
):
    make_choice(3, 1)
    vote = make_vote(choice_id=3, question_id=1, user_id=8)
    set_mode("vote", "reverse")
    cast = api_client.post("/api/votes/", {"choice": 3}, format="json", **bearer(7))
    assert_error(cast, 409, "owned_elsewhere")
    retract = api_client.delete(f"/api/votes/{vote.pk}/", **bearer(8))
    assert_error(retract, 409, "owned_elsewhere")
    assert list(Vote.objects.values_list("pk", flat=True)) == [vote.pk]
    assert outbox() == []


def test_a_vote_first_applied_from_the_monolith_continues_above_the_applied_seq():
    """Seq hand-off: the monolith (and any other consumer) has seen seq 3 of vote 40; the
    service's first event for it must be newer, or it would be dropped as stale."""
    set_mode("vote", "reverse")
    data = {
        "id": 40,
        "choice": 3,
        "question": 1,
        "user": 7,
        "created_at": "2026-11-28T10:00:00Z",
    }
    apply_events(
        [
            Event(type="vote.created", source="monolith", aggregate_id="40", seq=3,
                  data=data),
        ],
        handlers,
    )  # fmt: skip
    set_mode("vote", "forward")
    services.vote_retract(vote=Vote.objects.get(pk=40))
    assert [(t, a, s) for t, a, s, _ in outbox()] == [("vote.deleted", "40", 4)]


def test_new_votes_take_ids_from_the_services_own_sequence(make_choice, make_vote):
    set_mode("vote", "forward")
    make_choice(3, 1)
    make_choice(4, 2)
    first = services.vote_cast(user_id=7, choice_id=3)
    second = services.vote_cast(user_id=7, choice_id=4)
    assert second.pk > first.pk
    assert [a for _, a, _, _ in outbox()] == [str(first.pk), str(second.pk)]
