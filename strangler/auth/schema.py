"""Tells drf-spectacular how ``JWTAuthentication`` looks in the OpenAPI schema (bearer JWT).

drf-spectacular discovers the extension when this module is imported; ``strangler.auth.drf``
imports it so every deployable's schema documents the scheme.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "strangler.auth.drf.JWTAuthentication"
    name = "bearerJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "RS256 token from POST /api/auth/token/ (verified with the JWKS).",
        }
