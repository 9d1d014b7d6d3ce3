"""Data sync for one plan: resumable backfill, lag-aware verify, reconcile from a verify
report, status, and the sequence cutover before writes move to the service.

Works on plain DB-API connections (psycopg2 for PostgreSQL, sqlite3 for the embedded default),
so it runs without Django. See docs/sync.md.
"""

from __future__ import annotations

from strangler.sync.db import Database, SyncError, connect

__all__ = ["Database", "SyncError", "connect"]
