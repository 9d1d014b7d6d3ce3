"""Question, Choice and Vote: the legacy tables the vote and choice services take over."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Question(models.Model):
    question_text = models.CharField(max_length=200)
    pub_date = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="questions"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.question_text


class Choice(models.Model):
    question = models.ForeignKey(
        Question, on_delete=models.CASCADE, related_name="choices"
    )
    choice_text = models.CharField(max_length=200)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Target of the composite foreign key from Vote (see migration 0002).
            models.UniqueConstraint(
                fields=["id", "question"], name="polls_choice_id_question_uniq"
            )
        ]

    def __str__(self) -> str:
        return self.choice_text


class Vote(models.Model):
    choice = models.ForeignKey(Choice, on_delete=models.CASCADE, related_name="votes")
    # Denormalised from choice.question so the database itself can enforce one vote per user
    # per question; a composite foreign key keeps it equal to the choice's question.
    question = models.ForeignKey(
        Question, on_delete=models.CASCADE, related_name="votes"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "question"], name="polls_vote_one_per_user_per_question"
            )
        ]

    def __str__(self) -> str:
        return f"vote {self.pk} by user {self.user_id} for choice {self.choice_id}"
