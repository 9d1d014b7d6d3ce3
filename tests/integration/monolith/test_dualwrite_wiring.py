"""The monolith's service functions publish through the outbox according to each entity's mode."""

from __future__ import annotations

import pytest

from monolith.polls.models import Choice, Question, Vote
from strangler.dualwrite.models import OutboxEvent
from strangler.dualwrite.modes import set_mode
from tests.factories import ChoiceFactory, QuestionFactory, VoteFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def forward():
    for entity in ("vote", "choice", "question"):
        set_mode(entity, "forward")


def events(type_: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(type=type_).order_by("id"))


def test_vote_cast_in_forward_mode_records_one_event_with_the_vote(
    auth_client, forward
):
    choice = ChoiceFactory()
    response = auth_client.post("/api/votes/", {"choice": choice.pk})
    assert response.status_code == 201
    (event,) = events("vote.created")
    body = response.json()
    assert event.aggregate_id == str(body["id"])
    assert event.seq == 1
    data = event.envelope["data"]
    assert {k: data[k] for k in ("id", "choice", "question", "user")} == {
        k: body[k] for k in ("id", "choice", "question", "user")
    }


def test_nothing_is_recorded_while_the_mode_is_off(auth_client):
    choice = ChoiceFactory()
    assert auth_client.post("/api/votes/", {"choice": choice.pk}).status_code == 201
    assert OutboxEvent.objects.count() == 0


def test_a_refused_second_vote_records_no_event(auth_client, forward):
    choice = ChoiceFactory()
    assert auth_client.post("/api/votes/", {"choice": choice.pk}).status_code == 201
    assert auth_client.post("/api/votes/", {"choice": choice.pk}).status_code == 409
    assert len(events("vote.created")) == 1


def test_retracting_a_vote_records_deleted_with_the_next_seq(auth_client, forward):
    choice = ChoiceFactory()
    vote_id = auth_client.post("/api/votes/", {"choice": choice.pk}).json()["id"]
    assert auth_client.delete(f"/api/votes/{vote_id}/").status_code == 204
    (deleted,) = events("vote.deleted")
    assert (deleted.aggregate_id, deleted.seq) == (str(vote_id), 2)


def test_question_delete_records_one_event_for_the_whole_question(auth_client, forward):
    question = QuestionFactory(created_by=auth_client.user)
    VoteFactory(choice=ChoiceFactory(question=question))
    assert auth_client.delete(f"/api/questions/{question.pk}/").status_code == 204
    (event,) = events("question.deleted")
    assert event.envelope["data"] == {"id": question.pk}
    assert events("vote.deleted") == [] and events("choice.deleted") == []


def test_choice_changes_are_recorded_in_order(auth_client, forward):
    question = QuestionFactory(created_by=auth_client.user)
    created = auth_client.post(
        "/api/choices/", {"question": question.pk, "choice_text": "a"}
    )
    choice_id = created.json()["id"]
    auth_client.patch(f"/api/choices/{choice_id}/", {"choice_text": "b"})
    auth_client.delete(f"/api/choices/{choice_id}/")
    recorded = OutboxEvent.objects.filter(aggregate_id=str(choice_id)).order_by("seq")
    assert [(e.type, e.seq) for e in recorded] == [
        ("choice.created", 1),
        ("choice.updated", 2),
        ("choice.deleted", 3),
    ]
    assert recorded[1].envelope["data"]["choice_text"] == "b"


def test_reverse_mode_refuses_the_monolith_write_and_changes_nothing(auth_client):
    set_mode("vote", "reverse")
    choice = ChoiceFactory()
    response = auth_client.post("/api/votes/", {"choice": choice.pk})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "owned_elsewhere"
    assert "reverse mode" in error["message"]
    assert Vote.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


def test_reverse_mode_on_one_entity_leaves_the_others_writable(auth_client, forward):
    set_mode("vote", "reverse")
    response = auth_client.post("/api/questions/", {"question_text": "still ours?"})
    assert response.status_code == 201
    assert Question.objects.count() == 1
    assert Choice.objects.count() == 0
    assert len(events("question.created")) == 1
