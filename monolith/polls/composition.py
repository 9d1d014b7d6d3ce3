"""``GET /api/questions/{id}/results/`` once votes or choices live in a service.

Questions never leave the monolith, so results are composed here. While an entity's mode in
this database is ``forward`` or ``off`` the monolith owns it and its tables are the truth (one
query, as before). Once the mode is ``reverse`` (stages ``writes`` and ``owned``) the service
owns it: the legacy table lags behind the reverse sync and is frozen at ``owned``, so choices
come from the choice service's API and counts from the vote service's internal endpoint.
Each call has a timeout; a dependency that is down or slow is a 503 naming it, never a
result with wrong numbers.
"""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings

from monolith.polls import selectors
from monolith.polls.models import Question
from strangler.dualwrite.models import Mode
from strangler.dualwrite.modes import get_mode
from strangler.events.http import internal_token

_session = requests.Session()


class DependencyUnavailable(Exception):
    """A service the answer depends on did not answer in time; rendered as 503."""

    http_status = 503
    error_code = "unavailable"


def _owned_elsewhere(entity: str) -> bool:
    return get_mode(entity) == Mode.REVERSE


def _get(
    service: str, path: str, params: dict[str, Any], *, internal: bool = False
) -> dict:
    base = settings.STRANGLER_SERVICES[service].rstrip("/")
    headers = {"Authorization": f"Bearer {internal_token()}"} if internal else {}
    try:
        response = _session.get(
            f"{base}{path}",
            params=params,
            headers=headers,
            timeout=settings.STRANGLER_COMPOSE_TIMEOUT,
        )
    except requests.RequestException as exc:
        raise DependencyUnavailable(
            f"The {service} service at {base} did not answer: {exc.__class__.__name__}."
        ) from None
    if response.status_code != 200:
        raise DependencyUnavailable(
            f"The {service} service at {base} answered {response.status_code} for {path}."
        )
    return response.json()


def _remote_choices(question_id: int) -> list[dict[str, Any]]:
    choices: list[dict[str, Any]] = []
    page = 1
    while True:
        body = _get(
            "choice",
            "/api/choices/",
            {"question": question_id, "page_size": 100, "page": page},
        )
        choices.extend(
            {"id": c["id"], "choice_text": c["choice_text"]} for c in body["results"]
        )
        if not body.get("next"):
            return sorted(choices, key=lambda c: c["id"])
        page += 1


def _remote_counts(question_id: int) -> dict[int, int]:
    body = _get(
        "vote",
        "/_strangler/internal/vote-counts",
        {"question": question_id},
        internal=True,
    )
    return {row["choice"]: row["votes"] for row in body["counts"]}


def question_results(*, question_id: int) -> dict[str, Any] | None:
    """The results document of docs/api-contract.md, from whichever side owns each part."""
    votes_remote = _owned_elsewhere("vote")
    choices_remote = _owned_elsewhere("choice")
    if not votes_remote and not choices_remote:
        return selectors.question_results(question_id=question_id)
    question = (
        Question.objects.filter(pk=question_id).values("id", "question_text").first()
    )
    if question is None:
        return None
    if choices_remote:
        choices = _remote_choices(question_id)
    else:
        choices = list(
            selectors.choice_list(question_id=question_id).values("id", "choice_text")
        )
    if votes_remote:
        counts = _remote_counts(question_id)
    else:
        counts = selectors.vote_counts(question_id=question_id)
    rows = [{**choice, "votes": counts.get(choice["id"], 0)} for choice in choices]
    return {
        "id": question["id"],
        "question_text": question["question_text"],
        "total_votes": sum(row["votes"] for row in rows),
        "choices": rows,
    }
