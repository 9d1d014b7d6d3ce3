"""Settings for the monolith, every value read from the environment.

With no environment at all (the embedded default) it runs on SQLite under ``var/`` with a
generated secret and dev JWT keys; set ``DATABASE_URL`` for PostgreSQL, and then ``SECRET_KEY``
and the JWT key files are required.
"""

from __future__ import annotations

from strangler import conf
from strangler.api.settings import rest_framework_settings
from strangler.auth.keys import generate_dev_key_pair
from strangler.web.logging import logging_config

SERVICE_NAME = "monolith"
DEBUG = conf.env_bool("DEBUG", False)
SECRET_KEY = conf.secret_key()
ALLOWED_HOSTS = conf.env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
USE_X_FORWARDED_HOST = conf.env_bool("USE_X_FORWARDED_HOST", True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "monolith.accounts",
    "monolith.polls",
    "strangler.dualwrite",
    "strangler.consumer",
]

MIDDLEWARE = [
    "strangler.web.request_id.RequestIdMiddleware",
    "strangler.web.dryrun.DryRunMiddleware",
    "strangler.web.events.EventsHeaderMiddleware",
    "strangler.web.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if DEBUG:
    INSTALLED_APPS.append("debug_toolbar")
    MIDDLEWARE.insert(2, "debug_toolbar.middleware.DebugToolbarMiddleware")
    INTERNAL_IPS = ["127.0.0.1"]

ROOT_URLCONF = "monolith.config.urls"
WSGI_APPLICATION = "monolith.config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": conf.database("monolith")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = conf.var_dir() / "static"

if conf.dev_defaults() and not conf.env_str("JWT_PRIVATE_KEY_FILE", ""):
    _private, _public = generate_dev_key_pair(conf.var_dir() / "keys")
    _private_default, _public_default = str(_private), str(_public)
else:
    _private_default = _public_default = None

STRANGLER_JWT = {
    "ISSUER": conf.env_str("JWT_ISSUER", "strangler-monolith"),
    "PRIVATE_KEY_FILE": conf.env_str("JWT_PRIVATE_KEY_FILE", _private_default),
    "PUBLIC_KEY_FILE": conf.env_str("JWT_PUBLIC_KEY_FILE", _public_default),
    "TTL_SECONDS": conf.env_int("JWT_TTL_SECONDS", 3600, minimum=1),
    "USER_LOADER": "monolith.accounts.auth.load_user",
}

# Where results are composed from once votes or choices are owned by a service.
STRANGLER_SERVICES = {
    "vote": conf.env_str("VOTE_SERVICE_URL", "http://127.0.0.1:8001"),
    "choice": conf.env_str("CHOICE_SERVICE_URL", "http://127.0.0.1:8002"),
}
STRANGLER_COMPOSE_TIMEOUT = conf.env_int("COMPOSE_TIMEOUT_MS", 2000, minimum=1) / 1000

# The reverse path: the services' vote and choice events applied to the legacy tables.
STRANGLER_CONSUMER = {
    "QUEUE": conf.env_str("STRANGLER_CONSUMER_QUEUE", "monolith"),
    "HANDLERS": "monolith.polls.reverse",
}

REST_FRAMEWORK = rest_framework_settings(
    authentication="strangler.auth.drf.JWTAuthentication"
)
SPECTACULAR_SETTINGS = {
    "TITLE": "Polls API",
    "DESCRIPTION": "The polls monolith's API: the contract every extracted service keeps.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = logging_config(service="monolith", level=conf.env_str("LOG_LEVEL", "INFO"))
