"""The DRF settings dict shared by every deployable, with its authentication plugged in."""

from __future__ import annotations

from typing import Any


def rest_framework_settings(*, authentication: str) -> dict[str, Any]:
    return {
        "DEFAULT_AUTHENTICATION_CLASSES": [authentication],
        "DEFAULT_PERMISSION_CLASSES": [
            "rest_framework.permissions.IsAuthenticatedOrReadOnly"
        ],
        "DEFAULT_PAGINATION_CLASS": "strangler.api.pagination.StablePageNumberPagination",
        "PAGE_SIZE": 20,
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
        "EXCEPTION_HANDLER": "strangler.api.errors.exception_handler",
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
        "UNAUTHENTICATED_USER": None,
        "TEST_REQUEST_DEFAULT_FORMAT": "json",
    }
