"""The JSON event envelope: ``{id, type, source, aggregate_id, seq, occurred_at, data}``.

Events carry the full state of their aggregate after the change (state transfer, not deltas),
so a consumer that sees a higher ``seq`` may safely drop an older event for the same aggregate.
The aggregate is named by the type's prefix (``vote`` in ``vote.created``) and ``aggregate_id``,
which is always a string on the wire (``"42"``) so that non-integer keys fit too.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EXCHANGE = "strangler.events"

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "vote.created",
        "vote.deleted",
        "choice.created",
        "choice.updated",
        "choice.deleted",
        "question.created",
        "question.updated",
        "question.deleted",
    }
)

FIELDS = ("id", "type", "source", "aggregate_id", "seq", "occurred_at", "data")
_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class InvalidEvent(ValueError):
    """A message that is not a valid envelope; ``str(exc)`` says which field and why."""


class UnknownEventType(InvalidEvent):
    """A well-formed envelope whose type nobody here knows how to apply."""


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    source: str
    aggregate_id: str
    seq: int
    data: dict[str, Any]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        validate_fields(self)

    @property
    def aggregate_type(self) -> str:
        """The entity the event is about: ``vote`` for ``vote.created``."""
        return self.type.split(".", 1)[0]

    @property
    def is_deletion(self) -> bool:
        return self.type.endswith(".deleted")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "source": self.source,
            "aggregate_id": self.aggregate_id,
            "seq": self.seq,
            "occurred_at": self.occurred_at.isoformat(),
            "data": self.data,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode()

    @classmethod
    def from_dict(cls, raw: Any) -> Event:
        """Build an event from decoded JSON, raising ``InvalidEvent`` naming the bad field."""
        if not isinstance(raw, dict):
            raise InvalidEvent(
                f"envelope must be a JSON object, got {type(raw).__name__}"
            )
        missing = [name for name in FIELDS if name not in raw]
        if missing:
            raise InvalidEvent(f"envelope is missing {', '.join(missing)}")
        extra = sorted(set(raw) - set(FIELDS))
        if extra:
            raise InvalidEvent(f"envelope has unknown fields {', '.join(extra)}")
        try:
            event_id = uuid.UUID(str(raw["id"]))
        except ValueError:
            raise InvalidEvent(f"id: not a UUID: {raw['id']!r}") from None
        try:
            occurred_at = datetime.fromisoformat(str(raw["occurred_at"]))
        except ValueError:
            raise InvalidEvent(
                f"occurred_at: not an ISO 8601 timestamp: {raw['occurred_at']!r}"
            ) from None
        aggregate_id = raw["aggregate_id"]
        if isinstance(aggregate_id, int) and not isinstance(aggregate_id, bool):
            aggregate_id = str(aggregate_id)
        return cls(
            id=event_id,
            type=raw["type"],
            source=raw["source"],
            aggregate_id=aggregate_id,
            seq=raw["seq"],
            occurred_at=occurred_at,
            data=raw["data"],
        )

    @classmethod
    def from_json(cls, body: bytes | str) -> Event:
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"body is not JSON: {exc}") from None
        return cls.from_dict(raw)


def validate_fields(event: Event) -> None:
    """Check every field's type and shape; raise ``InvalidEvent`` naming the first bad one."""
    if not isinstance(event.type, str) or not _TYPE_RE.match(event.type):
        raise InvalidEvent(f"type: must look like 'entity.action', got {event.type!r}")
    if not isinstance(event.source, str) or not event.source:
        raise InvalidEvent(f"source: must be a non-empty string, got {event.source!r}")
    if not isinstance(event.aggregate_id, str) or not event.aggregate_id:
        raise InvalidEvent(
            f"aggregate_id: must be a non-empty string, got {event.aggregate_id!r}"
        )
    if not isinstance(event.seq, int) or isinstance(event.seq, bool) or event.seq < 1:
        raise InvalidEvent(f"seq: must be a positive integer, got {event.seq!r}")
    if not isinstance(event.data, dict):
        raise InvalidEvent(
            f"data: must be a JSON object, got {type(event.data).__name__}"
        )
    if not isinstance(event.id, uuid.UUID):
        raise InvalidEvent(f"id: must be a UUID, got {event.id!r}")
    if not isinstance(event.occurred_at, datetime) or event.occurred_at.tzinfo is None:
        raise InvalidEvent("occurred_at: must be a timezone-aware datetime")


def require_known_type(event_type: str) -> None:
    """Raise ``UnknownEventType`` unless ``event_type`` is one the project defines."""
    if event_type not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        raise UnknownEventType(
            f"type: unknown event type {event_type!r} (known: {known})"
        )
