"""monolith/polls/reverse.py: the services' events applied to the legacy tables by the
consumer (``apply_events``), with ids preserved, the legacy sequences moved past them, and the
monolith's own events never applied back."""

from __future__ import annotations

import pytest

from monolith.polls import services
from monolith.polls.models import Choice, Vote
from monolith.polls.reverse import handlers
from strangler.consumer.apply import Outcome, apply_events
from strangler.dualwrite.guard import WriteForbidden
from strangler.dualwrite.models import OutboxEvent
from strangler.dualwrite.modes import set_mode
from strangler.events import Event
from tests.factories import ChoiceFactory, QuestionFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def apply(type_: str, data: dict, seq: int = 1, *, source: str = "vote") -> Outcome:
    event = Event(
        type=type_, source=source, aggregate_id=str(data["id"]), seq=seq, data=data
    )
    return apply_events([event], handlers)[0]


def vote_data(vote_id: int, choice: Choice, user) -> dict:
    return {
        "id": vote_id,
        "choice": choice.pk,
        "question": choice.question_id,
        "user": user.pk,
        "created_at": "2026-11-28T10:00:00Z",
    }


def votes() -> list[tuple[int, int, int, int]]:
    return list(
        Vote.objects.order_by("id").values_list(
            "id", "choice_id", "question_id", "user_id"
        )
    )


@pytest.fixture
def reverse_votes():
    set_mode("vote", "reverse")
    set_mode("choice", "reverse")


def test_vote_created_and_deleted_keep_the_services_id(reverse_votes):
    choice, user = ChoiceFactory(), UserFactory()
    apply("vote.created", vote_data(5000, choice, user), 1)
    assert votes() == [(5000, choice.pk, choice.question_id, user.pk)]
    apply("vote.deleted", vote_data(5000, choice, user), 2)
    assert votes() == []
    assert not OutboxEvent.objects.exists(), "applying must not echo an event back"


def test_the_legacy_sequence_moves_past_applied_ids(reverse_votes):
    choice, user = ChoiceFactory(), UserFactory()
    apply("vote.created", vote_data(5000, choice, user), 1)
    set_mode("vote", "forward")  # a rollback: the monolith writes votes again
    vote = services.vote_cast(user_id=UserFactory().pk, choice_id=choice.pk)
    assert vote.pk > 5000


def test_a_vote_whose_choice_is_gone_here_is_skipped(reverse_votes):
    choice, user = ChoiceFactory(), UserFactory()
    data = vote_data(5000, choice, user)
    Choice.objects.filter(pk=choice.pk).delete()
    assert apply("vote.created", data) is Outcome.APPLIED
    assert votes() == []


def test_the_higher_id_of_two_votes_by_one_user_on_a_question_wins(reverse_votes):
    question = QuestionFactory()
    first, second = ChoiceFactory(question=question), ChoiceFactory(question=question)
    user = UserFactory()
    apply("vote.created", vote_data(5000, first, user))
    apply("vote.created", vote_data(5001, second, user))
    apply("vote.created", vote_data(4999, first, user))
    assert votes() == [(5001, second.pk, question.pk, user.pk)]


def test_choice_events_upsert_and_delete_with_their_votes(reverse_votes):
    question = QuestionFactory()
    data = {"id": 7000, "question": question.pk, "choice_text": "tea"}
    apply("choice.created", data, 1, source="choice")
    apply("choice.updated", {**data, "choice_text": "coffee"}, 2, source="choice")
    assert list(Choice.objects.values_list("id", "choice_text")) == [(7000, "coffee")]
    apply("vote.created", vote_data(5000, Choice.objects.get(), UserFactory()))
    apply("choice.deleted", {"id": 7000, "question": question.pk}, 3, source="choice")
    assert not Choice.objects.exists()
    assert votes() == []


def test_the_monolith_does_not_apply_its_own_events():
    choice, user = ChoiceFactory(), UserFactory()
    assert apply("vote.created", vote_data(5000, choice, user), source="monolith") == (
        Outcome.APPLIED
    )
    assert votes() == []


def test_local_vote_writes_in_reverse_mode_are_refused(reverse_votes):
    with pytest.raises(WriteForbidden):
        services.vote_cast(user_id=UserFactory().pk, choice_id=ChoiceFactory().pk)
    assert votes() == []
