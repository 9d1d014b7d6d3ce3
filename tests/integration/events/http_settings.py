"""The test consumer's settings with its HTTP endpoint mounted, for a gunicorn subprocess."""

from __future__ import annotations

from tests.integration.events.settings import *  # noqa: F403

ROOT_URLCONF = "tests.integration.events.urls"
