"""The choice as the API shows it, and what a client sends to create or change one."""

from __future__ import annotations

from rest_framework import serializers

from extracted.choice_service.choices.models import QuestionRef
from strangler.api.fields import (
    TEXT_MAX_LENGTH,
    StrictCharField,
    StrictPrimaryKeyRelatedField,
)


class ChoiceSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    question = serializers.IntegerField(source="question_id", read_only=True)
    choice_text = serializers.CharField(read_only=True)


class ChoiceWriteSerializer(serializers.Serializer):
    """``question`` must be known to this service's projection; on update it cannot change."""

    question = StrictPrimaryKeyRelatedField(queryset=QuestionRef.objects.all())
    choice_text = StrictCharField(max_length=TEXT_MAX_LENGTH)

    def validate_question(self, question: QuestionRef) -> QuestionRef:
        if self.instance is not None and question.pk != self.instance.question_id:
            raise serializers.ValidationError(
                "A choice cannot move to another question."
            )
        return question
