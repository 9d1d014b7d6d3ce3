"""Small database helpers shared by every deployable's service functions."""

from __future__ import annotations

from django.db import IntegrityError


def violates(error: IntegrityError, constraint: str, *, sqlite_columns: str) -> bool:
    """Whether ``error`` is a violation of the named unique constraint.

    PostgreSQL names the constraint; SQLite only names the columns
    (``"table.col_a, table.col_b"``), so the caller passes those too.
    """
    diag = getattr(error.__cause__, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name == constraint
    return sqlite_columns in str(error)
