"""The vote service's tests run only under its settings (one settings module per process):

./scripts/test tests/integration/vote_service --ds=extracted.vote_service.config.settings
"""

from __future__ import annotations

import os

SETTINGS = "extracted.vote_service.config.settings"

if os.environ.get("DJANGO_SETTINGS_MODULE") != SETTINGS:
    collect_ignore_glob = ["*"]


import pytest  # noqa: E402


@pytest.fixture
def make_choice(db):
    """Put a choice into the service's projection, as the forward consumer would."""
    from extracted.vote_service.votes.models import ChoiceRef

    def make(choice_id: int, question_id: int) -> ChoiceRef:
        return ChoiceRef.objects.create(id=choice_id, question_id=question_id, seq=1)

    return make


@pytest.fixture
def make_vote(db):
    from extracted.vote_service.votes.models import Vote

    def make(*, choice_id: int, question_id: int, user_id: int) -> Vote:
        return Vote.objects.create(
            choice_id=choice_id, question_id=question_id, user_id=user_id
        )

    return make
