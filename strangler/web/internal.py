"""Service-to-service endpoints under ``/_strangler/internal/``: bearer internal token only.

The router never proxies these paths, and each one checks the shared internal token
(``strangler.events.http.internal_token``), so a client can reach them neither way.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from strangler.api.errors import json_error
from strangler.events.http import internal_token


def is_internal_call(request: HttpRequest) -> bool:
    expected = f"Bearer {internal_token()}"
    return hmac.compare_digest(request.headers.get("Authorization", ""), expected)


def internal_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_internal_call(request):
            return json_error(
                401, "not_authenticated", "Internal endpoint: internal token required."
            )
        return view(request, *args, **kwargs)

    return wrapper
