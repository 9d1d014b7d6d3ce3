"""The JSON shapes of questions, choices, votes and results (docs/api-contract.md).

Fields are strict about types: ``"question_text": 5`` or ``"choice": "3"`` is a 400, not a
silent conversion, so every service that copies this contract refuses the same input.
"""

from __future__ import annotations

from rest_framework import serializers

from monolith.polls.models import Choice, Question, Vote
from strangler.api.fields import (
    TEXT_MAX_LENGTH,
    StrictCharField,
    StrictPrimaryKeyRelatedField,
)


class QuestionSerializer(serializers.ModelSerializer):
    question_text = StrictCharField(max_length=TEXT_MAX_LENGTH)

    class Meta:
        model = Question
        fields = ["id", "question_text", "pub_date", "created_by"]
        read_only_fields = ["id", "created_by"]


class ChoiceSerializer(serializers.ModelSerializer):
    question = StrictPrimaryKeyRelatedField(queryset=Question.objects.all())
    choice_text = StrictCharField(max_length=TEXT_MAX_LENGTH)

    class Meta:
        model = Choice
        fields = ["id", "question", "choice_text"]
        read_only_fields = ["id"]

    def validate_question(self, question: Question) -> Question:
        if self.instance is not None and question.pk != self.instance.question_id:
            raise serializers.ValidationError(
                "A choice cannot move to another question."
            )
        return question


class VoteSerializer(serializers.ModelSerializer):
    choice = StrictPrimaryKeyRelatedField(queryset=Choice.objects.all())

    class Meta:
        model = Vote
        fields = ["id", "choice", "question", "user", "created_at"]
        read_only_fields = ["id", "question", "user", "created_at"]


class ChoiceResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    choice_text = serializers.CharField()
    votes = serializers.IntegerField()


class QuestionResultsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    question_text = serializers.CharField()
    total_votes = serializers.IntegerField()
    choices = ChoiceResultSerializer(many=True)
