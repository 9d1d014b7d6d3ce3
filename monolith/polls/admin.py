"""Admin for the polls tables.

Foreign keys are raw ids because the tables are large. Saves and deletes go through the
service functions, like every other write, so admin edits reach the outbox too; votes are
cast only through the API, so the admin can view and delete them but not add or edit them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from monolith.polls import services
from monolith.polls.models import Choice, Question, Vote


@admin.register(Question)
class QuestionAdmin(admin.ModelAdmin):
    list_display = ["id", "question_text", "pub_date", "created_by"]
    list_select_related = ["created_by"]
    search_fields = ["question_text"]
    raw_id_fields = ["created_by"]
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["created_by"] if obj is not None else []

    def save_model(self, request, obj: Question, form, change: bool) -> None:
        if change:
            changed = set(form.changed_data) & services.QUESTION_UPDATABLE_FIELDS
            services.question_update(
                question=obj, **{name: getattr(obj, name) for name in changed}
            )
        else:
            obj.pk = services.question_create(
                created_by_id=obj.created_by_id,
                question_text=obj.question_text,
                pub_date=obj.pub_date,
            ).pk

    def delete_model(self, request, obj: Question) -> None:
        services.question_delete(question=obj)

    def delete_queryset(self, request, queryset: QuerySet[Question]) -> None:
        for question in queryset:
            services.question_delete(question=question)


@admin.register(Choice)
class ChoiceAdmin(admin.ModelAdmin):
    list_display = ["id", "choice_text", "question"]
    list_select_related = ["question"]
    search_fields = ["choice_text"]
    raw_id_fields = ["question"]
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["question"] if obj is not None else []

    def save_model(self, request, obj: Choice, form, change: bool) -> None:
        if change:
            services.choice_update(choice=obj, choice_text=obj.choice_text)
        else:
            obj.pk = services.choice_create(
                question=obj.question, choice_text=obj.choice_text
            ).pk

    def delete_model(self, request, obj: Choice) -> None:
        services.choice_delete(choice=obj)

    def delete_queryset(self, request, queryset: QuerySet[Choice]) -> None:
        for choice in queryset:
            services.choice_delete(choice=choice)


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "question_id", "choice_id", "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    raw_id_fields = ["choice", "question", "user"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request, obj: Vote) -> None:
        services.vote_retract(vote=obj)

    def delete_queryset(self, request, queryset: QuerySet[Vote]) -> None:
        for vote in queryset:
            services.vote_retract(vote=vote)
