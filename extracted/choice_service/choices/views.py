"""``/api/choices/``: list by question; create, change or delete as the question's creator."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from extracted.choice_service.choices import selectors, services
from extracted.choice_service.choices.models import Choice
from extracted.choice_service.choices.serializers import (
    ChoiceSerializer,
    ChoiceWriteSerializer,
)
from extracted.common.permissions import IsOwner
from strangler.api.params import integer_params

FILTERS = {"question": "question_id"}


class IsChoiceQuestionCreator(IsOwner):
    message = "Only the question's creator can change its choices."

    def owner_id(self, obj: Choice) -> int | None:
        return selectors.question_creator_id(question_id=obj.question_id)


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter("question", int)]),
    create=extend_schema(
        request=ChoiceWriteSerializer,
        responses={status.HTTP_201_CREATED: ChoiceSerializer},
    ),
    update=extend_schema(request=ChoiceWriteSerializer, responses=ChoiceSerializer),
    partial_update=extend_schema(
        request=ChoiceWriteSerializer, responses=ChoiceSerializer
    ),
)
class ChoiceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ChoiceSerializer
    permission_classes = [
        permissions.IsAuthenticatedOrReadOnly,
        IsChoiceQuestionCreator,
    ]

    def get_queryset(self) -> QuerySet[Choice]:
        if self.action == "list":
            return selectors.choice_list(**integer_params(self.request, FILTERS))
        return selectors.choice_list()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ChoiceWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        question = data.validated_data["question"]
        if question.created_by_id != request.user.pk:
            raise PermissionDenied(IsChoiceQuestionCreator.message)
        choice = services.choice_create(
            question=question, choice_text=data.validated_data["choice_text"]
        )
        return Response(ChoiceSerializer(choice).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        choice = self.get_object()
        data = ChoiceWriteSerializer(
            choice, data=request.data, partial=kwargs.get("partial", False)
        )
        data.is_valid(raise_exception=True)
        choice = services.choice_update(
            choice=choice,
            choice_text=data.validated_data.get("choice_text", choice.choice_text),
        )
        return Response(ChoiceSerializer(choice).data)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def perform_destroy(self, instance: Choice) -> None:
        services.choice_delete(choice=instance)
