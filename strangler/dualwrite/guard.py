"""Refuse local writes to entities this database no longer owns (mode ``reverse``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import DEFAULT_DB_ALIAS

_applying: ContextVar[bool] = ContextVar(
    "strangler_applying_remote_events", default=False
)
_dry_run: ContextVar[bool] = ContextVar("strangler_dry_run", default=False)


class WriteForbidden(RuntimeError):
    """Local code tried to write an entity that is in ``reverse`` mode."""

    # How strangler.api.errors answers it over HTTP: the data lives elsewhere now.
    http_status = 409
    error_code = "owned_elsewhere"


@contextmanager
def applying_remote_events() -> Iterator[None]:
    """Mark the enclosed code as the consumer applying another service's events."""
    token = _applying.set(True)
    try:
        yield
    finally:
        _applying.reset(token)


def is_applying_remote_events() -> bool:
    return _applying.get()


@contextmanager
def rolled_back_dry_run() -> Iterator[None]:
    """Mark the enclosed code as a shadowed write that will be rolled back (the router's dry
    run): it answers as if this database owned the entity, and nothing of it is kept."""
    token = _dry_run.set(True)
    try:
        yield
    finally:
        _dry_run.reset(token)


def is_dry_run() -> bool:
    return _dry_run.get()


def guard_write(entity: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Raise ``WriteForbidden`` if ``entity`` is in ``reverse`` mode here, unless the reverse
    consumer is the caller or the write is a rolled-back dry run (a shadowed write asks
    what this database would answer once it owns the entity)."""
    from strangler.dualwrite.models import Mode
    from strangler.dualwrite.modes import get_mode

    if (
        get_mode(entity, using) == Mode.REVERSE
        and not is_applying_remote_events()
        and not is_dry_run()
    ):
        raise WriteForbidden(
            f"{entity} is in reverse mode: another service owns it and only the reverse "
            f"consumer may write it in this database. Send the write to the owning "
            f"service, or move ownership back with `strangler dualwrite set {entity} forward`."
        )
