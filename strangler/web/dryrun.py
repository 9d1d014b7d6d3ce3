"""The services' side of shadowed writes: run a request as a dry run and roll it back.

When the router shadows an unsafe method it sends ``X-Strangler-Dry-Run: 1`` with
``X-Strangler-Router-Token``. If the token matches ``STRANGLER_ROUTER_TOKEN`` (settings or
environment), the view runs inside ``transaction.atomic()`` on every database, the response
is produced, and the transaction is rolled back, so nothing is written and no
``on_commit`` hook (event publishing) fires. The write guard lets a dry run through even
while the entity is in ``reverse`` mode here: the router shadows writes before the service
owns them, to learn what it would answer. A dry-run header without a valid token is
refused with 403 before the view runs, so a client cannot ask for it.
"""

from __future__ import annotations

import hmac
import os
from contextlib import ExitStack

from django.conf import settings
from django.db import connections, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from strangler.dualwrite.guard import rolled_back_dry_run

DRY_RUN_HEADER = "X-Strangler-Dry-Run"
TOKEN_HEADER = "X-Strangler-Router-Token"  # noqa: S105 - a header name
ROLLED_BACK = "rolled-back"


def router_token() -> str:
    return getattr(settings, "STRANGLER_ROUTER_TOKEN", None) or os.environ.get(
        "STRANGLER_ROUTER_TOKEN", ""
    )


def _refuse(message: str) -> JsonResponse:
    return JsonResponse(
        {"error": {"code": "dry_run_forbidden", "message": message}}, status=403
    )


class DryRunMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if DRY_RUN_HEADER not in request.headers:
            return self.get_response(request)
        expected = router_token()
        given = request.headers.get(TOKEN_HEADER, "")
        if not expected:
            return _refuse("Dry runs are not enabled here (no STRANGLER_ROUTER_TOKEN).")
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            return _refuse("A dry run needs the router's token.")
        with ExitStack() as stack:
            stack.enter_context(rolled_back_dry_run())
            for alias in connections:
                stack.enter_context(transaction.atomic(using=alias))
            response = self.get_response(request)
            if hasattr(response, "render") and callable(response.render):
                response = response.render()
            for alias in connections:
                transaction.set_rollback(True, using=alias)
        response[DRY_RUN_HEADER] = ROLLED_BACK
        return response
