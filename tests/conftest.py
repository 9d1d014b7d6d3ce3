"""Test-wide fixtures and the rule that a missing server skips its tests, but fails CI."""

from __future__ import annotations

import os

import pytest

MISSING = set(os.environ.get("STRANGLER_MISSING_SERVICES", "").split())
SKIP_PREFIX = "missing service:"


def pytest_collection_modifyitems(config, items):
    for item in items:
        for service in ("postgres", "rabbitmq"):
            if service in MISSING and item.get_closest_marker(service):
                item.add_marker(
                    pytest.mark.skip(reason=f"{SKIP_PREFIX} {service} is not reachable")
                )


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if any(SKIP_PREFIX in str(getattr(report, "longrepr", "")) for report in skipped):
        session.exitstatus = 1


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory()


def bearer(user) -> dict[str, str]:
    """Headers that authenticate as ``user`` with a real RS256 token from the monolith's key."""
    from strangler.auth.tokens import issue_token

    return {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user.pk)['access']}"}


@pytest.fixture
def auth_client(user):
    """An APIClient that sends a real token for ``user`` with every request."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(**bearer(user))
    client.user = user
    return client


@pytest.fixture(autouse=True)
def _fresh_dualwrite_modes():
    """Each test starts without the previous test's cached dual-write modes (the cache is
    per process and outlives the rolled-back rows it was read from)."""
    from django.apps import apps

    if not apps.is_installed("strangler.dualwrite"):
        yield
        return
    from strangler.dualwrite.modes import clear_cache

    clear_cache()
    yield
    clear_cache()
