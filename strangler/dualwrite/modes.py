"""Per-entity dual-write modes, read from the database with a cache of at most one second.

The mode says how *this* database treats an entity: ``off`` (nothing published), ``forward``
(this database owns it and publishes every change), ``reverse`` (another service owns it; only
the reverse consumer writes it here). A change made with ``strangler dualwrite set`` reaches
every running process within ``CACHE_SECONDS`` without a restart.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from strangler.dualwrite.models import EntityMode, Mode

CACHE_SECONDS = 1.0
DEFAULT_ENTITIES = ("vote", "choice", "question")

_cache: dict[str, tuple[float, dict[str, str]]] = {}


def config() -> dict:
    return getattr(settings, "STRANGLER_DUALWRITE", {})


def entities() -> tuple[str, ...]:
    return tuple(config().get("ENTITIES", DEFAULT_ENTITIES))


def default_mode() -> str:
    return config().get("DEFAULT_MODE", Mode.OFF)


def all_modes(using: str = DEFAULT_DB_ALIAS) -> dict[str, str]:
    """Every known entity's mode, fresh from the database at most ``CACHE_SECONDS`` ago."""
    now = time.monotonic()
    cached = _cache.get(using)
    if cached is not None and cached[0] > now:
        return cached[1]
    stored = dict(EntityMode.objects.using(using).values_list("entity", "mode"))
    modes = {entity: stored.get(entity, default_mode()) for entity in entities()}
    modes.update(stored)
    _cache[using] = (now + CACHE_SECONDS, modes)
    return modes


def get_mode(entity: str, using: str = DEFAULT_DB_ALIAS) -> str:
    return all_modes(using).get(entity, default_mode())


def set_mode(entity: str, mode: str, using: str = DEFAULT_DB_ALIAS) -> str:
    """Store ``mode`` for ``entity`` and return the previous one; raise ``ValueError`` if bad."""
    if entity not in entities():
        raise ValueError(
            f"unknown entity {entity!r}; known: {', '.join(entities())} "
            "(settings STRANGLER_DUALWRITE['ENTITIES'])"
        )
    if mode not in Mode.values:
        raise ValueError(
            f"unknown mode {mode!r}; expected one of {', '.join(Mode.values)}"
        )
    previous = get_mode(entity, using)
    EntityMode.objects.using(using).update_or_create(
        entity=entity, defaults={"mode": mode}
    )
    clear_cache()
    return previous


def clear_cache() -> None:
    _cache.clear()
