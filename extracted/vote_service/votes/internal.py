"""Internal reads for other deployables: vote counts for the monolith's results endpoint."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from extracted.vote_service.votes.selectors import vote_counts
from strangler.api.errors import json_error
from strangler.web.internal import internal_only


@require_GET
@internal_only
def vote_counts_view(request: HttpRequest) -> JsonResponse:
    raw = request.GET.get("question", "")
    if not (raw.isascii() and raw.isdigit()):
        return json_error(
            400, "invalid", f"question: must be an integer id, got {raw!r}."
        )
    question_id = int(raw)
    counts = vote_counts(question_id=question_id)
    return JsonResponse(
        {
            "question": question_id,
            "counts": [
                {"choice": choice, "votes": n} for choice, n in sorted(counts.items())
            ],
        }
    )
