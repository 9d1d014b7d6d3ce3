"""Event references on the wire, for the causal fences of shadowed writes (docs/router.md).

An ``EventRef`` names one event by its aggregate and ``seq``: ``vote:123@2`` is the second
event of vote 123. A header holds a comma-separated list of them; the aggregate id is
percent-encoded, so ids holding ``:``, ``@`` or ``,`` survive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

# A backend's answer to a request carrying the router's token: the events its transaction
# committed. The router strips it before the client sees the answer.
EVENTS_HEADER = "X-Strangler-Events"
# On a dry run: events the shadow backend must have applied before executing it (the same
# principal's earlier writes), and the events of the primary's own answer.
FENCE_HEADER = "X-Strangler-Fence"
OVERTAKE_HEADER = "X-Strangler-Overtake"
# The dry run's answer: what happened, and which fenced events it found applied.
OUTCOME_HEADER = "X-Strangler-Dry-Run-Outcome"
APPLIED_HEADER = "X-Strangler-Applied"

EXECUTED = "executed"
FENCE_TIMEOUT = "fence-timeout"
OVERTAKEN = "overtaken"

MAX_REFS = 64  # more than any one request's transaction or a principal's 30 s of writes
_REF = re.compile(r"([a-z][a-z0-9_]*):([^:@,\s]+)@([1-9][0-9]{0,18})")


class BadRefs(ValueError):
    """A header value that is not a list of ``type:id@seq``; says which item."""


@dataclass(frozen=True, slots=True)
class EventRef:
    aggregate_type: str
    aggregate_id: str
    seq: int

    @property
    def aggregate(self) -> tuple[str, str]:
        return (self.aggregate_type, self.aggregate_id)

    def __str__(self) -> str:
        return f"{self.aggregate_type}:{quote(self.aggregate_id, safe='')}@{self.seq}"


def format_refs(refs: list[EventRef] | tuple[EventRef, ...]) -> str:
    return ", ".join(str(ref) for ref in refs)


def parse_refs(value: str | None) -> list[EventRef]:
    """The refs in a header value, in order; empty for no header. Raises ``BadRefs``."""
    if not value or not value.strip():
        return []
    items = value.split(",")
    if len(items) > MAX_REFS:
        raise BadRefs(f"{len(items)} event refs; at most {MAX_REFS}")
    refs = []
    for item in items:
        match = _REF.fullmatch(item.strip())
        if match is None:
            raise BadRefs(f"not an event ref (type:id@seq): {item.strip()[:80]!r}")
        kind, ident, seq = match.groups()
        refs.append(EventRef(kind, unquote(ident), int(seq)))
    return refs
