"""Connections to the source (read-only) and target databases, and their catalogs."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions


class SyncError(Exception):
    """A sync failure to report in one line (what went wrong, and how to fix it)."""


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def quote(name: str) -> str:
    """A double-quoted SQL identifier (plan names are validated, this guards the rest)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Database:
    """One open connection plus what the SQL builders need to know about its dialect."""

    kind: str  # "postgresql" or "sqlite"
    conn: Any
    url: str
    readonly: bool

    @property
    def is_pg(self) -> bool:
        return self.kind == "postgresql"

    @property
    def ph(self) -> str:
        return "%s" if self.is_pg else "?"

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchall()
        finally:
            cur.close()

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.rowcount
        finally:
            cur.close()

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        # Closing a broken connection must not mask the error that broke it.
        with contextlib.suppress(Exception):
            self.conn.close()

    def table_exists(self, table: str) -> bool:
        if self.is_pg:
            row = self.fetchone("SELECT to_regclass(%s) IS NOT NULL", (quote(table),))
        else:
            row = self.fetchone(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?",
                (table,),
            )
        self.end_read()
        return bool(row and row[0])

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> type as the catalog spells it; empty when the table is missing."""
        if self.is_pg:
            rows = self.fetchall(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod)"
                " FROM pg_attribute a WHERE a.attrelid = to_regclass(%s)"
                " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (quote(table),),
            )
        else:
            rows = [
                (r[1], (r[2] or "").lower())
                for r in self.fetchall(f"PRAGMA table_info({quote(table)})")
            ]
        self.end_read()
        return dict(rows)

    def end_read(self) -> None:
        """Close the implicit transaction a catalog read opened (no snapshot is kept)."""
        if self.is_pg:
            self.conn.rollback()


def connect(url: str, *, readonly: bool, label: str) -> Database:
    """Open ``url`` (postgres://… or sqlite:///path); ``label`` names it in errors."""
    scheme = url.split(":", 1)[0].lower()
    try:
        if scheme in {"postgres", "postgresql", "pgsql"}:
            if scheme == "pgsql":
                url = "postgresql" + url[len("pgsql") :]
            conn = psycopg2.connect(url, connect_timeout=10)
            conn.set_session(readonly=readonly, autocommit=False)
            cur = conn.cursor()
            cur.execute("SET TIME ZONE 'UTC'")
            cur.close()
            conn.commit()
            return Database("postgresql", conn, url, readonly)
        if scheme == "sqlite":
            path = url.split(":", 1)[1]
            path = re.sub(r"^//", "", path)
            if not path or path in {"/", ":memory:"}:
                raise SyncError(f"{label}: {url!r} names no SQLite file")
            if readonly:
                uri = Path(path).resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=30)
            else:
                conn = sqlite3.connect(path, timeout=30)
            return Database("sqlite", conn, url, readonly)
    except psycopg2.Error as exc:
        message = (
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        )
        raise SyncError(
            f"{label}: cannot connect to {redact(url)} ({message})"
        ) from None
    except sqlite3.Error as exc:
        raise SyncError(f"{label}: cannot open {redact(url)} ({exc})") from None
    raise SyncError(
        f"{label}: unsupported database URL scheme {scheme!r}; use postgres://… or sqlite:///path"
    )


def is_integer_type(sql_type: str) -> bool:
    return any(word in sql_type.lower() for word in ("int", "serial"))


def coerce_key(value: str | None, sql_type: str) -> Any:
    """A watermark key (stored as text) back in the key column's Python type."""
    if value is None:
        return None
    return int(value) if is_integer_type(sql_type) else value


def to_sqlite(value: Any) -> Any:
    """A value as SQLite stores what Django writes: naive UTC text timestamps, text decimals."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
