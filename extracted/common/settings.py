"""Settings building blocks every extracted service uses, so the services read their
environment the same way and differ only in their name, apps and URLs.

A service verifies the monolith's RS256 tokens with the public key alone: a key file
(``JWT_PUBLIC_KEY_FILE``) or the monolith's JWKS (``JWT_JWKS_URL``). It never holds the
private key.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from strangler import conf
from strangler.auth.keys import generate_dev_key_pair

MIDDLEWARE = [
    "strangler.web.request_id.RequestIdMiddleware",
    "strangler.web.dryrun.DryRunMiddleware",
    "strangler.web.events.EventsHeaderMiddleware",
    "strangler.web.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

HANDLERS = {
    "handler400": "strangler.api.errors.bad_request",
    "handler403": "strangler.api.errors.permission_denied",
    "handler404": "strangler.api.errors.not_found",
    "handler500": "strangler.api.errors.server_error",
}


def installed_apps(*apps: str) -> list[str]:
    """DRF, the schema generator, the service's own outbox and consumer, and its own apps;
    no auth, sessions or admin."""
    return [
        "django.contrib.contenttypes",
        "django.contrib.staticfiles",
        "rest_framework",
        "drf_spectacular",
        "strangler.dualwrite",
        "strangler.consumer",
        *apps,
    ]


def consumer(
    *, queue: str, handlers: str, bindings: list[str] | None = None
) -> dict[str, Any]:
    """``STRANGLER_CONSUMER``: the service's queue (``STRANGLER_CONSUMER_QUEUE`` overrides
    the name, e.g. to keep test runs apart on one broker) and its handler registry."""
    config: dict[str, Any] = {
        "QUEUE": conf.env_str("STRANGLER_CONSUMER_QUEUE", queue),
        "HANDLERS": handlers,
        "PREFETCH": conf.env_int("STRANGLER_CONSUMER_PREFETCH", 500, minimum=1),
        "BATCH_SIZE": conf.env_int("STRANGLER_CONSUMER_BATCH_SIZE", 250, minimum=1),
        "MAX_ATTEMPTS": conf.env_int("STRANGLER_CONSUMER_MAX_ATTEMPTS", 5, minimum=1),
    }
    if bindings is not None:
        config["BINDINGS"] = bindings
    return config


def jwt_verifier() -> dict[str, Any]:
    """``STRANGLER_JWT`` for a process that verifies tokens but cannot issue them.

    With neither ``JWT_PUBLIC_KEY_FILE`` nor ``JWT_JWKS_URL`` set, the dev defaults point at
    the monolith's dev public key under ``var/keys`` (created there if the monolith has not
    run yet, so the start order does not matter); the private key path is never kept here.
    """
    public_file = conf.env_str("JWT_PUBLIC_KEY_FILE", "")
    jwks_url = conf.env_str("JWT_JWKS_URL", "")
    if not public_file and not jwks_url and conf.dev_defaults():
        _, public_path = generate_dev_key_pair(conf.var_dir() / "keys")
        public_file = str(public_path)
    config: dict[str, Any] = {
        "ISSUER": conf.env_str("JWT_ISSUER", "strangler-monolith"),
        "USER_LOADER": "extracted.common.auth.load_token_user",
        "LEEWAY_SECONDS": conf.env_int("JWT_LEEWAY_SECONDS", 30, minimum=0),
        "JWKS_CACHE_SECONDS": conf.env_int("JWT_JWKS_CACHE_SECONDS", 300, minimum=1),
    }
    if public_file:
        config["PUBLIC_KEY_FILE"] = public_file
    elif jwks_url:
        config["JWKS_URL"] = jwks_url
    else:
        raise ImproperlyConfigured(
            "JWT_PUBLIC_KEY_FILE: set it, or JWT_JWKS_URL, so tokens can be verified"
        )
    return config


def spectacular(*, title: str, description: str) -> dict[str, Any]:
    return {
        "TITLE": title,
        "DESCRIPTION": description,
        "VERSION": "1.0.0",
        "SERVE_INCLUDE_SCHEMA": False,
    }
