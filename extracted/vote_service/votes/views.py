"""``/api/votes/``: list with filters, cast, retrieve, and retract one's own vote."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from extracted.common.permissions import IsOwner
from extracted.vote_service.votes import selectors, services
from extracted.vote_service.votes.models import Vote
from extracted.vote_service.votes.serializers import VoteCastSerializer, VoteSerializer
from strangler.api.errors import Conflict
from strangler.api.params import integer_params

FILTERS = {"choice": "choice_id", "question": "question_id", "user": "user_id"}


class AlreadyVotedError(Conflict):
    default_detail = "You have already voted on this question."
    default_code = "already_voted"


class IsVoter(IsOwner):
    message = "You can only delete your own vote."

    def owner_id(self, obj: Vote) -> int:
        return obj.user_id


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter(name, int) for name in FILTERS],
    ),
    create=extend_schema(
        request=VoteCastSerializer,
        responses={status.HTTP_201_CREATED: VoteSerializer},
        description="Vote for a choice; a second vote on the same question is a 409.",
    ),
)
class VoteViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = VoteSerializer
    permission_classes = [permissions.IsAuthenticatedOrReadOnly, IsVoter]

    def get_queryset(self) -> QuerySet[Vote]:
        if self.action == "list":
            return selectors.vote_list(**integer_params(self.request, FILTERS))
        return selectors.vote_list()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = VoteCastSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            vote = services.vote_cast(
                user_id=request.user.pk, choice_id=data.validated_data["choice"].pk
            )
        except services.AlreadyVoted:
            raise AlreadyVotedError() from None
        except services.ChoiceNotFound as error:
            raise ValidationError({"choice": [str(error)]}) from None
        return Response(VoteSerializer(vote).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Vote) -> None:
        services.vote_retract(vote=instance)
