"""How the monolith turns a verified token into one of its own users."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model


def load_user(claims: dict[str, Any]):
    """The active user the token's ``sub`` names, or None."""
    sub = str(claims.get("sub", ""))
    if not sub.isdigit():
        return None
    return get_user_model().objects.filter(pk=int(sub), is_active=True).first()
