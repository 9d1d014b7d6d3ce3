"""The event envelope every producer publishes and every consumer applies."""

from __future__ import annotations

from strangler.events.envelope import (
    EVENT_TYPES,
    EXCHANGE,
    Event,
    InvalidEvent,
    UnknownEventType,
)

__all__ = ["EVENT_TYPES", "EXCHANGE", "Event", "InvalidEvent", "UnknownEventType"]
