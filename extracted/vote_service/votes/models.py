"""Votes, and the local projection of choices the service needs to place a vote.

While the monolith owns writes a vote keeps the monolith's id (applied from events or the
backfill); once this service owns writes it allocates ids from its own sequence, which sync
moves past the legacy ids first. What events deleted is kept by the consumer
(``strangler_consumer_aggregateversion``); the view ``votes_tombstone`` shows those tombstones
to the plan file and ``strangler sync``.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Vote(models.Model):
    id = models.BigAutoField(primary_key=True)
    choice_id = models.BigIntegerField(db_index=True)
    # Denormalised from the choice so the database enforces one vote per user per question.
    question_id = models.BigIntegerField(db_index=True)
    user_id = models.BigIntegerField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    seq = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "question_id"],
                name="votes_vote_one_per_user_per_question",
            )
        ]

    def __str__(self) -> str:
        return f"vote {self.pk} by user {self.user_id} for choice {self.choice_id}"


class ChoiceRef(models.Model):
    """A choice as the vote service knows it: which question it belongs to."""

    id = models.BigIntegerField(primary_key=True)
    question_id = models.BigIntegerField(db_index=True)
    seq = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"choice {self.pk} of question {self.question_id}"
