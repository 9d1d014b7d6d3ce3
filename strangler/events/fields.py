"""Reading typed fields out of an event's ``data``, with errors that name the field.

Every consumer's handlers use these, so a malformed payload is refused the same way
(``InvalidEvent``, which sends the event to the dead-letter queue with the reason).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from strangler.events.envelope import InvalidEvent


def int_field(data: dict[str, Any], name: str) -> int:
    """``data[name]`` as an id; the API's name (``choice``) or the model's (``choice_id``)."""
    value = data.get(name, data.get(f"{name}_id"))
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"data.{name}: must be an integer id, got {value!r}")
    return value


def text_field(data: dict[str, Any], name: str, *, max_length: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidEvent(
            f"data.{name}: must be a string of at most {max_length} characters"
        )
    return value


def timestamp_field(data: dict[str, Any], name: str) -> datetime:
    value = data.get(name)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidEvent(
            f"data.{name}: must be an ISO 8601 timestamp with a zone, got {value!r}"
        )
    return parsed
