"""Choices, and the local projection of questions the service needs to check ownership.

What events deleted is kept by the consumer (``strangler_consumer_aggregateversion``); the
view ``choices_tombstone`` shows those tombstones to the plan file and ``strangler sync``.
"""

from __future__ import annotations

from django.db import models


class Choice(models.Model):
    id = models.BigAutoField(primary_key=True)
    question_id = models.BigIntegerField(db_index=True)
    choice_text = models.CharField(max_length=200)
    seq = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.choice_text


class QuestionRef(models.Model):
    """A question as the choice service knows it: who created it, and its text."""

    id = models.BigIntegerField(primary_key=True)
    created_by_id = models.BigIntegerField(db_index=True)
    question_text = models.CharField(max_length=200)
    pub_date = models.DateTimeField()
    seq = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.question_text
