"""WSGI entry point for the choice service (gunicorn extracted.choice_service.config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE", "extracted.choice_service.config.settings"
)
application = get_wsgi_application()
