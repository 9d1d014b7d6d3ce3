"""The services' side of shadowed writes: run a request as a dry run and roll it back.

When the router shadows an unsafe method it sends ``X-Strangler-Dry-Run: 1`` with
``X-Strangler-Router-Token``. If the token matches ``STRANGLER_ROUTER_TOKEN`` (settings or
environment), the view runs inside ``transaction.atomic()`` on every database, the response
is produced, and the transaction is rolled back, so nothing is written and no
``on_commit`` hook (event publishing) fires. The write guard lets a dry run through even
while the entity is in ``reverse`` mode here: the router shadows writes before the service
owns them, to learn what it would answer. A dry-run header without a valid token is
refused with 403 before the view runs, so a client cannot ask for it.

Causal fences (``strangler.events.refs``): the router sends the events of the same user's
earlier writes in ``X-Strangler-Fence`` and those of the primary's own answer in
``X-Strangler-Overtake``. The dry run first waits, up to ``STRANGLER_DRY_RUN_FENCE_SECONDS``
(setting or environment, default 2), until this database applied every fenced event; if
they do not arrive it does not run (outcome ``fence-timeout``). If the primary's own events
are already applied here, the dry run would meet its own write, so it does not run either
(``overtaken``); they are checked again once the view has run, since the consumer may
commit them meanwhile. Otherwise it runs (``executed``). ``X-Strangler-Dry-Run-Outcome``
says which, and ``X-Strangler-Applied`` lists the fenced events found applied, so the
router forgets them.
"""

from __future__ import annotations

import hmac
import os
from contextlib import ExitStack

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from strangler.api.errors import json_error
from strangler.dualwrite.guard import rolled_back_dry_run
from strangler.events.refs import (
    APPLIED_HEADER,
    EXECUTED,
    FENCE_HEADER,
    FENCE_TIMEOUT,
    OUTCOME_HEADER,
    OVERTAKE_HEADER,
    OVERTAKEN,
    BadRefs,
    EventRef,
    format_refs,
    parse_refs,
)

DRY_RUN_HEADER = "X-Strangler-Dry-Run"
TOKEN_HEADER = "X-Strangler-Router-Token"  # noqa: S105 - a header name
ROLLED_BACK = "rolled-back"
NOT_RUN = "not-run"
DEFAULT_FENCE_SECONDS = 2.0


def router_token() -> str:
    return getattr(settings, "STRANGLER_ROUTER_TOKEN", None) or os.environ.get(
        "STRANGLER_ROUTER_TOKEN", ""
    )


def has_router_token(request: HttpRequest) -> bool:
    """The request carries the router's token (and one is configured here)."""
    expected = router_token()
    given = request.headers.get(TOKEN_HEADER, "")
    return bool(expected and given) and hmac.compare_digest(
        given.encode(), expected.encode()
    )


def fence_seconds() -> float:
    """How long a dry run waits for its fence (setting, else environment, else 2 s)."""
    value = getattr(settings, "STRANGLER_DRY_RUN_FENCE_SECONDS", None)
    if value is None:
        value = (
            os.environ.get("STRANGLER_DRY_RUN_FENCE_SECONDS") or DEFAULT_FENCE_SECONDS
        )
    try:
        return max(0.0, float(value))
    except ValueError:
        raise ImproperlyConfigured(
            f"STRANGLER_DRY_RUN_FENCE_SECONDS: not a number of seconds: {value!r}"
        ) from None


def _refuse(message: str, code: str = "dry_run_forbidden", status: int = 403):
    return json_error(status, code, message)


def _not_run(outcome: str, applied: set[EventRef], missing: set[EventRef]):
    """The answer of a dry run that did not execute: never compared by the router."""
    response = JsonResponse(
        {
            "dry_run": {
                "outcome": outcome,
                "missing": format_refs(sorted(missing, key=str)),
            }
        }
    )
    response[DRY_RUN_HEADER] = NOT_RUN
    response[OUTCOME_HEADER] = outcome
    response[APPLIED_HEADER] = format_refs(sorted(applied, key=str))
    return response


class DryRunMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if DRY_RUN_HEADER not in request.headers:
            return self.get_response(request)
        if not router_token():
            return _refuse("Dry runs are not enabled here (no STRANGLER_ROUTER_TOKEN).")
        if not has_router_token(request):
            return _refuse("A dry run needs the router's token.")
        try:
            fence = set(parse_refs(request.headers.get(FENCE_HEADER)))
            overtake = set(parse_refs(request.headers.get(OVERTAKE_HEADER)))
        except BadRefs as exc:
            return _refuse(f"{FENCE_HEADER}/{OVERTAKE_HEADER}: {exc}", "bad_fence", 400)
        # Without a consumer nothing reaches this database as events: no fence applies.
        fenced = bool(fence or overtake) and apps.is_installed("strangler.consumer")
        applied: set[EventRef] = set()
        if fenced:
            from strangler.consumer.fence import applied as applied_refs
            from strangler.consumer.fence import wait_until_applied

            missing = wait_until_applied(fence, timeout=fence_seconds())
            applied = fence - missing
            if missing:
                return _not_run(FENCE_TIMEOUT, applied, missing)
            if overtaken := applied_refs(overtake):
                return _not_run(OVERTAKEN, applied | overtaken, set())
        with ExitStack() as stack:
            stack.enter_context(rolled_back_dry_run())
            for alias in connections:
                stack.enter_context(transaction.atomic(using=alias))
            response = self.get_response(request)
            if hasattr(response, "render") and callable(response.render):
                response = response.render()
            for alias in connections:
                transaction.set_rollback(True, using=alias)
        # The consumer may have committed the primary's own events while the view ran.
        if fenced and (overtaken := applied_refs(overtake)):
            return _not_run(OVERTAKEN, applied | overtaken, set())
        response[DRY_RUN_HEADER] = ROLLED_BACK
        response[OUTCOME_HEADER] = EXECUTED
        if applied:
            response[APPLIED_HEADER] = format_refs(sorted(applied, key=str))
        return response
