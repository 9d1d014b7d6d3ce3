"""DRF authentication from a ``Bearer`` RS256 token, verified with the public key only."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string
from rest_framework import authentication, exceptions

from strangler.auth.tokens import TokenError, jwt_settings, verify_token


class TokenUser:
    """The caller as the token names it: services have no user table, only the ``sub``."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    def __init__(self, claims: dict[str, Any]) -> None:
        sub = claims["sub"]
        self.pk = self.id = int(sub) if str(sub).isdigit() else sub
        self.claims = claims

    def __str__(self) -> str:
        return f"user {self.id}"


class JWTAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request) -> tuple[Any, dict[str, Any]] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not token.strip():
            raise exceptions.AuthenticationFailed(
                "Authorization header must be 'Bearer <token>'.",
                code="not_authenticated",
            )
        try:
            claims = verify_token(token.strip())
        except TokenError as exc:
            raise exceptions.AuthenticationFailed(
                str(exc), code="invalid_token"
            ) from None
        loader = jwt_settings().get("USER_LOADER")
        user = import_string(loader)(claims) if loader else TokenUser(claims)
        if user is None:
            raise exceptions.AuthenticationFailed(
                "Token names a user that does not exist or is inactive.",
                code="invalid_token",
            )
        return user, claims

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


# Registers the OpenAPI description of this scheme with drf-spectacular.
from strangler.auth import schema as _schema  # noqa: E402, F401
