"""Take the request id from ``X-Request-ID`` (or make one), log with it, and echo it back."""

from __future__ import annotations

import contextvars
import re
import uuid

HEADER = "X-Request-ID"
_SAFE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


def incoming_or_new(value: str | None) -> str:
    """The client's id when it is safe to log verbatim, else a fresh one."""
    if value and _SAFE.match(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request_id = incoming_or_new(request.headers.get(HEADER))
        request.request_id = request_id
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response[HEADER] = request_id
        return response
