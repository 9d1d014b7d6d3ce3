"""WSGI entry point for the monolith (gunicorn monolith.config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monolith.config.settings")
application = get_wsgi_application()
