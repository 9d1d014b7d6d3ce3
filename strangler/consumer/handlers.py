"""A registry of event handlers, one per event type (for one event or for a run of them),
loaded from settings."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from strangler.events.envelope import Event, UnknownEventType

Handler = Callable[[Event], None]
BatchHandler = Callable[[list[Event]], None]


class Handlers:
    """Maps an event type to the function that applies it inside the consumer's transaction.

    Handlers get the full event, run with the reverse-write guard lifted, and must be pure
    database work: the inbox and the version check around them make them run once per event.
    A batch handler (``on_batch``) gets instead each run of consecutive applied events of its
    type, in delivery order, and must leave what applying them one by one would.
    """

    def __init__(self) -> None:
        self._by_type: dict[str, Handler] = {}
        self._batch_by_type: dict[str, BatchHandler] = {}

    def on(self, *types: str) -> Callable[[Handler], Handler]:
        def decorator(func: Handler) -> Handler:
            for event_type in types:
                self.register(event_type, func)
            return func

        return decorator

    def on_batch(self, *types: str) -> Callable[[BatchHandler], BatchHandler]:
        def decorator(func: BatchHandler) -> BatchHandler:
            for event_type in types:
                self.register_batch(event_type, func)
            return func

        return decorator

    def register(self, event_type: str, func: Handler) -> None:
        if event_type in self._by_type:
            raise ValueError(f"a handler for {event_type!r} is already registered")
        self._by_type[event_type] = func

    def register_batch(self, event_type: str, func: BatchHandler) -> None:
        self.register(event_type, lambda event: func([event]))
        self._batch_by_type[event_type] = func

    def get(self, event_type: str) -> Handler:
        try:
            return self._by_type[event_type]
        except KeyError:
            raise UnknownEventType(
                f"type: no handler for {event_type!r} in this consumer "
                f"(handles {', '.join(sorted(self._by_type)) or 'nothing'})"
            ) from None

    def get_batch(self, event_type: str) -> BatchHandler:
        """The batch handler of ``event_type``, or one calling its handler per event."""
        func = self.get(event_type)
        batch = self._batch_by_type.get(event_type)
        if batch is not None:
            return batch

        def apply_each(events: list[Event]) -> None:
            for event in events:
                func(event)

        return apply_each

    @property
    def types(self) -> list[str]:
        return sorted(self._by_type)

    def bindings(self) -> list[str]:
        """Routing-key patterns: every action of each handled entity, so that an unknown
        action (``vote.renamed``) reaches the queue and is dead-lettered visibly."""
        return sorted(
            {f"{event_type.split('.', 1)[0]}.*" for event_type in self._by_type}
        )


def consumer_settings() -> dict:
    config = getattr(settings, "STRANGLER_CONSUMER", None)
    if not config or not config.get("HANDLERS"):
        raise ImproperlyConfigured(
            "STRANGLER_CONSUMER: set {'QUEUE': ..., 'HANDLERS': 'dotted.path'} in settings"
        )
    return config


def load_handlers(path: str | None = None) -> Handlers:
    """Import ``path`` (a module with a ``handlers`` attribute, or the object itself)."""
    path = path or consumer_settings()["HANDLERS"]
    try:
        target = import_string(path)
    except ImportError:
        try:
            target = __import__(path, fromlist=["handlers"])
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"STRANGLER_CONSUMER['HANDLERS']: cannot import {path!r}: {exc}"
            ) from exc
    if isinstance(target, ModuleType):
        target = getattr(target, "handlers", None)
    if not isinstance(target, Handlers):
        raise ImproperlyConfigured(
            f"STRANGLER_CONSUMER['HANDLERS']: {path!r} is not a Handlers registry "
            "(a module with `handlers = Handlers()` or the registry itself)"
        )
    return target
