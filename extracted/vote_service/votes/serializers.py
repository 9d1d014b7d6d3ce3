"""The vote as the API shows it, and what a client sends to cast one (only ``choice``)."""

from __future__ import annotations

from rest_framework import serializers

from extracted.vote_service.votes.models import ChoiceRef
from strangler.api.fields import StrictPrimaryKeyRelatedField


class VoteSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    choice = serializers.IntegerField(source="choice_id", read_only=True)
    question = serializers.IntegerField(source="question_id", read_only=True)
    user = serializers.IntegerField(source="user_id", read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class VoteCastSerializer(serializers.Serializer):
    """The choice must be known to this service's projection of choices."""

    choice = StrictPrimaryKeyRelatedField(queryset=ChoiceRef.objects.all())
