"""How a service turns a verified token into the caller: it has no user table."""

from __future__ import annotations

from typing import Any

from strangler.auth.drf import TokenUser


def load_token_user(claims: dict[str, Any]) -> TokenUser | None:
    """``USER_LOADER`` for services: the caller the token names, if ``sub`` is a user id.

    Services have no user table; like the monolith, a token whose ``sub`` is not a numeric
    user id is refused (401 ``invalid_token``).
    """
    sub = str(claims.get("sub", ""))
    return TokenUser(claims) if sub.isascii() and sub.isdigit() else None
