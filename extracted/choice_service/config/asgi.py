"""ASGI entry point for the choice service."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE", "extracted.choice_service.config.settings"
)
application = get_asgi_application()
