"""scripts/db/roles.sql: a database and a role per deployable, isolated from each other,
and a read-only ``legacy`` role on the monolith's database. Applied to scratch names."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest
from psycopg2 import errors, sql

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[3]
PREFIX = "h_vote_iso_"
NAMES = {
    "monolith_db": f"{PREFIX}monolith",
    "vote_db": f"{PREFIX}vote",
    "choice_db": f"{PREFIX}choice",
    "monolith_role": f"{PREFIX}monolith",
    "vote_role": f"{PREFIX}vote",
    "choice_role": f"{PREFIX}choice",
    "legacy_role": f"{PREFIX}legacy",
}


def _server() -> dict[str, object]:
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1/"))
    return {
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username or "postgres",
        "password": url.password,
    }


def connect(dbname: str, user: str | None = None):
    server = _server()
    if user is not None:
        server.update(user=user, password=None)
    return psycopg2.connect(dbname=dbname, connect_timeout=5, **server)


def apply_roles_sql() -> None:
    server = _server()
    args = ["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1"]
    for name, value in NAMES.items():
        args += ["-v", f"{name}={value}"]
    args += [
        "-h", str(server["host"]), "-p", str(server["port"]), "-U", str(server["user"]),
        "-d", "postgres", "-f", str(ROOT / "scripts/db/roles.sql"),
    ]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": str(server["password"] or "")}
    env.pop("VOTE_DB_PASSWORD", None)
    result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr


def _drop_scratch() -> None:
    admin = connect("postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        for key in ("monolith_db", "vote_db", "choice_db"):
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(NAMES[key])
                )
            )
        for key in ("monolith_role", "vote_role", "choice_role", "legacy_role"):
            cursor.execute(
                sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(NAMES[key]))
            )
    admin.close()


@pytest.fixture(scope="module")
def isolated() -> Iterator[None]:
    if shutil.which("psql") is None:
        pytest.fail("psql is needed to apply scripts/db/roles.sql")
    _drop_scratch()
    try:
        apply_roles_sql()
        apply_roles_sql()  # idempotent: a second run changes nothing and does not fail
        owner = connect(NAMES["monolith_db"], user=NAMES["monolith_role"])
        owner.autocommit = True
        with owner.cursor() as cursor:
            cursor.execute("CREATE TABLE polls_vote (id bigserial PRIMARY KEY, n int)")
            cursor.execute("INSERT INTO polls_vote (n) VALUES (1), (2)")
        owner.close()
        yield
    finally:
        _drop_scratch()


@pytest.mark.parametrize(
    ("role", "database", "allowed"),
    [
        ("vote_role", "vote_db", True),
        ("vote_role", "choice_db", False),
        ("vote_role", "monolith_db", False),
        ("choice_role", "choice_db", True),
        ("choice_role", "vote_db", False),
        ("choice_role", "monolith_db", False),
        ("monolith_role", "vote_db", False),
        ("legacy_role", "monolith_db", True),
        ("legacy_role", "vote_db", False),
        ("legacy_role", "choice_db", False),
    ],
)
def test_each_role_connects_only_to_its_own_database(isolated, role, database, allowed):
    if allowed:
        connect(NAMES[database], user=NAMES[role]).close()
        return
    with pytest.raises(psycopg2.OperationalError, match="CONNECT privilege"):
        connect(NAMES[database], user=NAMES[role])


def test_each_database_is_owned_by_its_role(isolated):
    admin = connect("postgres")
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database"
            " WHERE datname LIKE %s ORDER BY datname",
            (f"{PREFIX}%",),
        )
        owners = dict(cursor.fetchall())
    admin.close()
    assert owners == {
        NAMES["choice_db"]: NAMES["choice_role"],
        NAMES["monolith_db"]: NAMES["monolith_role"],
        NAMES["vote_db"]: NAMES["vote_role"],
    }


def test_legacy_reads_tables_the_monolith_created_later(isolated):
    legacy = connect(NAMES["monolith_db"], user=NAMES["legacy_role"])
    with legacy.cursor() as cursor:
        cursor.execute("SELECT n FROM polls_vote ORDER BY id")
        assert cursor.fetchall() == [(1,), (2,)]
        cursor.execute("SELECT last_value FROM polls_vote_id_seq")
        assert cursor.fetchone() == (2,)
    legacy.close()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO polls_vote (n) VALUES (3)",
        "UPDATE polls_vote SET n = 5",
        "DELETE FROM polls_vote",
        "CREATE TABLE sneaky (id int)",
    ],
)
def test_legacy_cannot_write_the_monolith_database(isolated, statement):
    legacy = connect(NAMES["monolith_db"], user=NAMES["legacy_role"])
    with legacy.cursor() as cursor, pytest.raises(errors.InsufficientPrivilege):
        cursor.execute(statement)
    legacy.close()
    owner = connect(NAMES["monolith_db"], user=NAMES["monolith_role"])
    with owner.cursor() as cursor:
        cursor.execute("SELECT n FROM polls_vote ORDER BY id")
        assert cursor.fetchall() == [(1,), (2,)]
    owner.close()
