"""Settings for the vote service, every value read from the environment.

With no environment (the embedded default) it runs on SQLite at ``var/vote.sqlite3`` and
verifies tokens with the monolith's dev public key under ``var/keys``; set ``DATABASE_URL``
for PostgreSQL, and then ``SECRET_KEY`` and ``JWT_PUBLIC_KEY_FILE`` or ``JWT_JWKS_URL``.
"""

from __future__ import annotations

from extracted.common import settings as common
from strangler import conf
from strangler.api.settings import rest_framework_settings
from strangler.web.logging import logging_config

# Also the event source and the relay's --producer name.
SERVICE_NAME = "vote"
DEBUG = conf.env_bool("DEBUG", False)
SECRET_KEY = conf.secret_key()
ALLOWED_HOSTS = conf.env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
USE_X_FORWARDED_HOST = conf.env_bool("USE_X_FORWARDED_HOST", True)

INSTALLED_APPS = common.installed_apps("extracted.vote_service.votes")
MIDDLEWARE = common.MIDDLEWARE
ROOT_URLCONF = "extracted.vote_service.config.urls"
WSGI_APPLICATION = "extracted.vote_service.config.wsgi.application"
TEMPLATES = common.TEMPLATES

DATABASES = {"default": conf.database("vote")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

STRANGLER_CONSUMER = common.consumer(
    queue="vote",
    handlers="extracted.vote_service.votes.handlers",
    # question.created/updated carry nothing the vote service keeps.
    bindings=["vote.*", "choice.*", "question.deleted"],
)

STRANGLER_JWT = common.jwt_verifier()
REST_FRAMEWORK = rest_framework_settings(
    authentication="strangler.auth.drf.JWTAuthentication"
)
SPECTACULAR_SETTINGS = common.spectacular(
    title="Vote service API",
    description="The votes the polls monolith used to own, served to the same contract.",
)

LOGGING = logging_config(service=SERVICE_NAME, level=conf.env_str("LOG_LEVEL", "INFO"))
