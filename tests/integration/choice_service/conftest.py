"""The choice service's tests run only under its settings (one settings module per process):

./scripts/test tests/integration/choice_service --ds=extracted.choice_service.config.settings
"""

from __future__ import annotations

import os

SETTINGS = "extracted.choice_service.config.settings"

if os.environ.get("DJANGO_SETTINGS_MODULE") != SETTINGS:
    collect_ignore_glob = ["*"]


import pytest  # noqa: E402


@pytest.fixture
def make_question(db):
    """Put a question into the service's projection, as the forward consumer would."""
    from django.utils import timezone

    from extracted.choice_service.choices.models import QuestionRef

    def make(question_id: int, created_by_id: int) -> QuestionRef:
        return QuestionRef.objects.create(
            id=question_id,
            created_by_id=created_by_id,
            question_text=f"question {question_id}",
            pub_date=timezone.now(),
            seq=1,
        )

    return make


@pytest.fixture
def make_choice(db):
    from extracted.choice_service.choices.models import Choice

    def make(question_id: int, choice_text: str = "yes") -> Choice:
        return Choice.objects.create(question_id=question_id, choice_text=choice_text)

    return make
