"""Fixtures for the monolith's API tests: a fast password hasher and ready-made polls."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # PBKDF2 at Django's default cost takes most of a second per user; tests need none of it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def question(user):
    """A question created by ``user`` with three choices."""
    from tests.factories import ChoiceFactory, QuestionFactory

    question = QuestionFactory(created_by=user)
    ChoiceFactory.create_batch(3, question=question)
    return question


@pytest.fixture
def other_client(db):
    """An APIClient authenticated as a second user who created nothing."""
    from rest_framework.test import APIClient

    from tests.conftest import bearer
    from tests.factories import UserFactory

    other = UserFactory()
    client = APIClient()
    client.credentials(**bearer(other))
    client.user = other
    return client
