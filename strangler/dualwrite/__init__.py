"""Dual-write adapters: the transactional outbox and the per-entity write mode.

Service functions call ``emit`` inside their ``transaction.atomic`` block; the relay publishes
what was committed. ``guard_write`` refuses local writes to an entity this database no longer
owns (mode ``reverse``) unless the reverse consumer is applying remote events.
"""

from __future__ import annotations

default_app_config = None
