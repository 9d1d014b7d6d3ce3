"""Tell the router which events a write committed: ``X-Strangler-Events: vote:123@2``.

Only for requests carrying the router's token (``strangler.web.dryrun.has_router_token``),
so clients never see it; the router strips it from every answer anyway. The router keeps
them per user and fences that user's next shadowed dry run on them (docs/router.md).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from strangler.dualwrite.emitted import collecting
from strangler.events.refs import EVENTS_HEADER, format_refs
from strangler.web.dryrun import has_router_token


class EventsHeaderMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not has_router_token(request):
            return self.get_response(request)
        with collecting() as refs:
            response = self.get_response(request)
        if refs:
            response[EVENTS_HEADER] = format_refs(refs)
        return response
