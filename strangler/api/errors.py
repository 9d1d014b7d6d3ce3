"""One JSON error shape for every 4xx/5xx, from DRF views and from plain Django alike.

    {"error": {"code": "already_voted", "message": "...", "fields": {...}}}

``code`` is stable and machine-readable; ``message`` is for people; ``fields`` appears only
for validation errors and maps each bad field to its messages.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A dependency is unavailable; try again later."
    default_code = "unavailable"


def error_body(code: str, message: str, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    return {"error": body}


def _first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        return f"{key}: {_first_message(value)}"
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: DRF's own handling, re-shaped into the stable body.

    A domain exception that declares ``http_status`` and ``error_code`` (for example the
    dual-write guard's ``WriteForbidden``) is answered with them and its message.
    """
    if not isinstance(exc, exceptions.APIException) and hasattr(exc, "http_status"):
        return Response(error_body(exc.error_code, str(exc)), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = (
            exc.detail
            if isinstance(exc.detail, dict)
            else {"non_field_errors": exc.detail}
        )
        response.data = error_body(
            "invalid", f"Invalid input: {_first_message(detail)}", fields=detail
        )
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(code, _first_message(exc.detail))
    return response


def json_error(status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_code)


def not_found(request, exception=None):
    return json_error(404, "not_found", f"No resource at {request.path}.")


def server_error(request):
    return json_error(500, "server_error", "Internal server error.")


def bad_request(request, exception=None):
    return json_error(400, "bad_request", "Bad request.")


def permission_denied(request, exception=None):
    return json_error(403, "permission_denied", "You do not have permission.")
