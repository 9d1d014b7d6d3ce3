"""The choice service as a producer: its writes record events in its own outbox, refuse to
run while the monolith owns choices, and continue the seq of choices first known from the
monolith's events."""

from __future__ import annotations

import pytest

from extracted.choice_service.choices import services
from extracted.choice_service.choices.handlers import handlers
from extracted.choice_service.choices.models import Choice
from strangler.consumer.apply import apply_events
from strangler.dualwrite.models import OutboxEvent
from strangler.dualwrite.modes import set_mode
from strangler.events import Event
from tests.integration.servicehelpers import assert_error, bearer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def outbox() -> list[tuple[str, str, int, dict]]:
    return [
        (row.type, row.aggregate_id, row.seq, row.envelope["data"])
        for row in OutboxEvent.objects.order_by("id")
    ]


def test_create_update_delete_publish_the_choice_in_the_apis_field_names(
    make_question,
):
    set_mode("choice", "forward")
    question = make_question(1, 7)
    choice = services.choice_create(question=question, choice_text="tea")
    services.choice_update(choice=choice, choice_text="coffee")
    key, choice_id = str(choice.pk), choice.pk
    services.choice_delete(choice=choice)
    assert outbox() == [
        ("choice.created", key, 1, {"id": choice_id, "question": 1, "choice_text": "tea"}),
        ("choice.updated", key, 2, {"id": choice_id, "question": 1, "choice_text": "coffee"}),
        ("choice.deleted", key, 3, {"id": choice_id, "question": 1}),
    ]  # fmt: skip


def test_while_the_monolith_owns_choices_the_api_answers_409(api_client, make_question):
    make_question(1, 7)
    set_mode("choice", "reverse")
    response = api_client.post(
        "/api/choices/",
        {"question": 1, "choice_text": "x"},
        format="json",
        **bearer(7),
    )
    assert_error(response, 409, "owned_elsewhere")
    assert not Choice.objects.exists()
    assert outbox() == []


def test_a_choice_first_applied_from_the_monolith_continues_above_the_applied_seq(
    make_question,
):
    make_question(1, 7)
    apply_events(
        [
            Event(type="choice.created", source="monolith", aggregate_id="30", seq=1,
                  data={"id": 30, "question": 1, "choice_text": "a"}),
            Event(type="choice.updated", source="monolith", aggregate_id="30", seq=2,
                  data={"id": 30, "question": 1, "choice_text": "b"}),
        ],
        handlers,
    )  # fmt: skip
    set_mode("choice", "forward")
    services.choice_update(choice=Choice.objects.get(pk=30), choice_text="c")
    services.choice_update(choice=Choice.objects.get(pk=30), choice_text="d")
    assert [(t, a, s) for t, a, s, _ in outbox()] == [
        ("choice.updated", "30", 3),
        ("choice.updated", "30", 4),
    ]
