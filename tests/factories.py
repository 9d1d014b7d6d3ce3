"""factory-boy factories for every model the tests build."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from monolith.polls.models import Choice, Question, Vote

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(self, create, extracted, **kwargs):
        if create:
            self.save()


class QuestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Question

    question_text = factory.Faker("sentence", nb_words=6)
    created_by = factory.SubFactory(UserFactory)


class ChoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Choice

    question = factory.SubFactory(QuestionFactory)
    choice_text = factory.Faker("word")


class VoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vote

    choice = factory.SubFactory(ChoiceFactory)
    question = factory.LazyAttribute(lambda vote: vote.choice.question)
    user = factory.SubFactory(UserFactory)
