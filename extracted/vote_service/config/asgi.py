"""ASGI entry point for the vote service."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE", "extracted.vote_service.config.settings"
)
application = get_asgi_application()
