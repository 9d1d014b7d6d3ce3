"""The HTTP transport's receiving end: ``POST /_strangler/internal/events``.

Applies a relay's batch with the same inbox, seq and tombstone rules as the RabbitMQ consumer
and answers 200 only after commit. Events of types this consumer does not bind are ignored;
malformed events and failing handlers are kept in ``DeadLetter`` with the reason (the batch's
other events still apply); a database outage answers 503 so the relay retries.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import traceback

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from strangler.api.errors import json_error
from strangler.consumer.apply import apply_events
from strangler.consumer.handlers import consumer_settings, load_handlers
from strangler.consumer.models import DeadLetter
from strangler.events.envelope import Event, InvalidEvent
from strangler.web.internal import is_internal_call

logger = logging.getLogger("strangler.consumer")


@csrf_exempt
@require_POST
def receive_events(request: HttpRequest) -> JsonResponse:
    if not is_internal_call(request):
        return json_error(
            401, "not_authenticated", "a valid internal events token is required"
        )
    try:
        raw_events = json.loads(request.body)["events"]
        if not isinstance(raw_events, list):
            raise TypeError("events must be a list")
    except (ValueError, KeyError, TypeError) as exc:
        return json_error(400, "invalid_batch", f"expected {{'events': [...]}}: {exc}")
    handlers = load_handlers()
    # The same subscription as this consumer's RabbitMQ queue: configured bindings when
    # set (e.g. only question.deleted of the question events), else every handled entity.
    bindings = consumer_settings().get("BINDINGS") or handlers.bindings()
    counts = {
        "applied": 0,
        "duplicate": 0,
        "stale": 0,
        "ignored": 0,
        "dead_lettered": 0,
    }
    events: list[Event] = []
    for raw in raw_events:
        try:
            event = Event.from_dict(raw)
        except InvalidEvent as exc:
            _dead_letter(raw, str(exc), counts)
            continue
        if not any(
            fnmatch.fnmatchcase(event.type, p.replace("#", "*")) for p in bindings
        ):
            counts["ignored"] += 1
            continue
        try:
            handlers.get(event.type)
        except InvalidEvent as exc:
            _dead_letter(raw, str(exc), counts)
            continue
        events.append(event)
    try:
        outcomes = _apply(events, handlers, raw_events, counts)
    except (OperationalError, InterfaceError) as exc:
        return json_error(503, "database_unavailable", str(exc))
    for outcome in outcomes:
        counts[outcome.value] += 1
    return JsonResponse({"results": counts})


def _apply(events, handlers, raw_events, counts) -> list:
    if not events:
        return []
    try:
        return apply_events(events, handlers)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        outcomes = []
        for event in events:
            try:
                outcomes += apply_events([event], handlers)
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:
                reason = "".join(traceback.format_exception_only(exc)).strip()
                _dead_letter(event.to_dict(), f"handler failed: {reason}", counts)
        return outcomes


def _dead_letter(raw: object, reason: str, counts: dict[str, int]) -> None:
    logger.warning("dead-lettering an event: %s", reason)
    event_id = str(raw.get("id", ""))[:64] if isinstance(raw, dict) else ""
    DeadLetter.objects.create(
        event_id=event_id, body=json.dumps(raw, default=str), reason=reason
    )
    counts["dead_lettered"] += 1
