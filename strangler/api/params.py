"""Query parameters the API contract defines: integer id filters."""

from __future__ import annotations

import re

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

_INTEGER = re.compile(r"-?[0-9]+")


def integer_param(request: Request, name: str) -> int | None:
    """The query parameter ``name`` as an int, None when absent, else a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not _INTEGER.fullmatch(raw):
        raise ValidationError({name: [f"Must be an integer id, got {raw!r}."]})
    return int(raw)


def integer_params(request: Request, names: dict[str, str]) -> dict[str, int | None]:
    """``{kwarg: integer_param(request, param)}`` for each ``param → kwarg`` in ``names``."""
    return {kwarg: integer_param(request, param) for param, kwarg in names.items()}
