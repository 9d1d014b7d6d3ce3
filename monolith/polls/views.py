"""The polls API: validate the request, call one service or selector, serialize the answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from monolith.polls import composition, selectors, services
from monolith.polls.models import Choice, Question, Vote
from monolith.polls.serializers import (
    ChoiceSerializer,
    QuestionResultsSerializer,
    QuestionSerializer,
    VoteSerializer,
)
from strangler.api.errors import Conflict
from strangler.api.params import integer_param


class AlreadyVotedError(Conflict):
    default_detail = "You have already voted on this question."
    default_code = "already_voted"


def id_filter(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, int, OpenApiParameter.QUERY, description=description)


class IsQuestionCreator(permissions.BasePermission):
    message = "Only the question's creator can change it."

    def has_object_permission(self, request: Request, view: Any, obj: Question) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return obj.created_by_id == request.user.pk


class IsChoiceQuestionCreator(permissions.BasePermission):
    message = "Only the question's creator can change its choices."

    def has_object_permission(self, request: Request, view: Any, obj: Choice) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return obj.question.created_by_id == request.user.pk


class IsVoter(permissions.BasePermission):
    message = "You can only delete your own vote."

    def has_object_permission(self, request: Request, view: Any, obj: Vote) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return obj.user_id == request.user.pk


class QuestionViewSet(viewsets.ModelViewSet):
    serializer_class = QuestionSerializer
    permission_classes = [permissions.IsAuthenticatedOrReadOnly, IsQuestionCreator]

    def get_queryset(self):
        return selectors.question_list()

    def perform_create(self, serializer: QuestionSerializer) -> None:
        serializer.instance = services.question_create(
            created_by_id=self.request.user.pk, **serializer.validated_data
        )

    def perform_update(self, serializer: QuestionSerializer) -> None:
        serializer.instance = services.question_update(
            question=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Question) -> None:
        services.question_delete(question=instance)

    @extend_schema(responses=QuestionResultsSerializer)
    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: str | None = None) -> Response:
        """The question's choices with their vote counts (see polls/composition.py)."""
        if pk is None or not (pk.isascii() and pk.isdigit()):
            raise NotFound()
        results = composition.question_results(question_id=int(pk))
        if results is None:
            raise NotFound()
        return Response(QuestionResultsSerializer(results).data)


@extend_schema_view(
    list=extend_schema(parameters=[id_filter("question", "Only this question's.")])
)
class ChoiceViewSet(viewsets.ModelViewSet):
    serializer_class = ChoiceSerializer
    permission_classes = [
        permissions.IsAuthenticatedOrReadOnly,
        IsChoiceQuestionCreator,
    ]

    def get_queryset(self):
        if self.action == "list":
            return selectors.choice_list(
                question_id=integer_param(self.request, "question")
            )
        return selectors.choice_list()

    def perform_create(self, serializer: ChoiceSerializer) -> None:
        question = serializer.validated_data["question"]
        if question.created_by_id != self.request.user.pk:
            raise PermissionDenied(IsChoiceQuestionCreator.message)
        serializer.instance = services.choice_create(
            question=question, choice_text=serializer.validated_data["choice_text"]
        )

    def perform_update(self, serializer: ChoiceSerializer) -> None:
        choice = serializer.instance
        serializer.instance = services.choice_update(
            choice=choice,
            choice_text=serializer.validated_data.get(
                "choice_text", choice.choice_text
            ),
        )

    def perform_destroy(self, instance: Choice) -> None:
        services.choice_delete(choice=instance)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            id_filter("choice", "Only votes for this choice."),
            id_filter("question", "Only votes on this question."),
            id_filter("user", "Only this user's votes."),
        ]
    ),
    create=extend_schema(
        responses={status.HTTP_201_CREATED: VoteSerializer},
        description="Vote for a choice; a second vote on the same question is a 409.",
    ),
)
class VoteViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = VoteSerializer
    permission_classes = [permissions.IsAuthenticatedOrReadOnly, IsVoter]

    def get_queryset(self):
        if self.action == "list":
            return selectors.vote_list(
                choice_id=integer_param(self.request, "choice"),
                question_id=integer_param(self.request, "question"),
                user_id=integer_param(self.request, "user"),
            )
        return selectors.vote_list()

    def perform_create(self, serializer: VoteSerializer) -> None:
        try:
            serializer.instance = services.vote_cast(
                user_id=self.request.user.pk,
                choice_id=serializer.validated_data["choice"].pk,
            )
        except services.AlreadyVoted:
            raise AlreadyVotedError() from None
        except services.ChoiceNotFound as error:
            raise ValidationError({"choice": [str(error)]}) from None

    def perform_destroy(self, instance: Vote) -> None:
        services.vote_retract(vote=instance)
