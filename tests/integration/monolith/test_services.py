"""The service functions, the only writers: what each writes and what each refuses."""

from __future__ import annotations

import pytest

from monolith.polls import services
from monolith.polls.models import Question, Vote
from tests.factories import ChoiceFactory, QuestionFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_vote_cast_derives_question_from_choice():
    choice = ChoiceFactory()
    user = UserFactory()
    vote = services.vote_cast(user_id=user.pk, choice_id=choice.pk)
    assert (vote.question_id, vote.user_id) == (choice.question_id, user.pk)


def test_vote_cast_twice_raises_already_voted_and_keeps_the_first():
    first, second = ChoiceFactory.create_batch(2, question=QuestionFactory())
    user = UserFactory()
    services.vote_cast(user_id=user.pk, choice_id=first.pk)
    with pytest.raises(services.AlreadyVoted) as raised:
        services.vote_cast(user_id=user.pk, choice_id=second.pk)
    assert raised.value.question_id == first.question_id
    assert list(Vote.objects.values_list("choice_id", flat=True)) == [first.pk]


def test_vote_cast_for_missing_choice_raises_choice_not_found():
    with pytest.raises(services.ChoiceNotFound):
        services.vote_cast(user_id=UserFactory().pk, choice_id=987654)
    assert Vote.objects.count() == 0


def test_question_update_refuses_fields_it_does_not_own():
    question = QuestionFactory()
    with pytest.raises(TypeError, match="created_by_id"):
        services.question_update(question=question, created_by_id=UserFactory().pk)
    assert Question.objects.get().created_by_id == question.created_by_id


def test_question_update_writes_only_the_given_fields():
    question = QuestionFactory(question_text="old")
    stale = Question.objects.get(pk=question.pk)
    Question.objects.filter(pk=question.pk).update(question_text="concurrent edit")
    services.question_update(question=stale, pub_date=stale.pub_date)
    assert Question.objects.get().question_text == "concurrent edit"
