"""Durable plan state and the append-only transition history.

Two back ends with one interface: ``PgStore`` (tables ``strangler_plan_state`` and
``strangler_plan_history`` in the control database named by ``STRANGLER_CONTROL_DATABASE_URL``,
a PostgreSQL advisory lock per service) and ``FileStore`` (the embedded default:
``<var>/plan/<service>.json`` replaced atomically, ``history.jsonl`` appended with fsync, an
``flock`` per service). A lock dies with its process, so a killed ``advance`` never blocks
the next one; what it left half done is in the state's ``pending`` transition.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2

CONTROL_ENV = "STRANGLER_CONTROL_DATABASE_URL"


class StoreError(Exception):
    """The control store cannot be used; the message names it and the fix."""


class Busy(StoreError):
    """Another plan command holds this service's lock."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Action:
    """One step of a transition; ``params`` are fixed when the transition starts."""

    kind: str
    params: dict[str, Any]
    description: str
    done: bool = False
    result: Any = None


@dataclass
class Transition:
    """A move between stages that has started; cleared once every action is done."""

    kind: str  # "advance" or "rollback"
    from_stage: str
    to_stage: str
    actions: list[Action]
    actor: str
    reason: str
    started_at: str
    gates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transition:
        actions = [Action(**a) for a in data.get("actions", [])]
        return cls(**{**data, "actions": actions})


@dataclass
class PlanState:
    service: str
    stage: str = "monolith"
    pending: Transition | None = None
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "stage": self.stage,
            "pending": self.pending.to_dict() if self.pending else None,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanState:
        pending = data.get("pending")
        return cls(
            service=data["service"],
            stage=data["stage"],
            pending=Transition.from_dict(pending) if pending else None,
            updated_at=data.get("updated_at"),
        )


class FileStore:
    """State as one JSON file per service, history as JSONL; for the embedded default."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.history_file = root / "history.jsonl"

    def describe(self) -> str:
        return str(self.root)

    @contextlib.contextmanager
    def lock(self, service: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{service}.lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(
                    f"another `strangler plan` command is changing {service!r} "
                    f"(lock {self.root / f'.{service}.lock'}); wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self, service: str) -> PlanState:
        path = self.root / f"{service}.json"
        try:
            return PlanState.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return PlanState(service)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{path}: unreadable plan state ({exc}); fix: restore it from "
                "`strangler plan history`"
            ) from None

    def save(self, state: PlanState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        state.updated_at = now_iso()
        path = self.root / f"{state.service}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(state.to_dict(), indent=2, default=str))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def append_history(self, entry: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.history_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def history(self, service: str | None = None) -> list[dict[str, Any]]:
        try:
            lines = self.history_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = [json.loads(line) for line in lines if line.strip()]
        return [e for e in entries if service is None or e["service"] == service]

    def close(self) -> None:
        return None


_PG_DDL = """
CREATE TABLE IF NOT EXISTS strangler_plan_state (
    service text PRIMARY KEY,
    state jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS strangler_plan_history (
    id bigserial PRIMARY KEY,
    service text NOT NULL,
    entry jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS strangler_plan_history_service
    ON strangler_plan_history (service, id);
"""


class PgStore:
    """State and history in the control database; one advisory lock per service."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.conn = psycopg2.connect(url, connect_timeout=10)
        except psycopg2.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(
                f"{CONTROL_ENV}: cannot connect to the control database ({first})"
            ) from None
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            # Two first runs at once could both try to create the tables.
            cur.execute("SELECT pg_advisory_lock(hashtext('strangler_plan_ddl'))")
            try:
                cur.execute(_PG_DDL)
            finally:
                cur.execute("SELECT pg_advisory_unlock(hashtext('strangler_plan_ddl'))")

    def describe(self) -> str:
        return "control database (strangler_plan_state, strangler_plan_history)"

    @staticmethod
    def _key(service: str) -> int:
        digest = hashlib.sha256(f"strangler-plan:{service}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    @contextlib.contextmanager
    def lock(self, service: str) -> Iterator[None]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (self._key(service),))
            if not cur.fetchone()[0]:
                raise Busy(
                    f"another `strangler plan` command is changing {service!r} "
                    "(advisory lock held in the control database); wait for it to finish"
                )
        try:
            yield
        finally:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (self._key(service),))

    def load(self, service: str) -> PlanState:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT state FROM strangler_plan_state WHERE service = %s", (service,)
            )
            row = cur.fetchone()
        return PlanState(service) if row is None else PlanState.from_dict(row[0])

    def save(self, state: PlanState) -> None:
        state.updated_at = now_iso()
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO strangler_plan_state (service, state, updated_at)"
                " VALUES (%s, %s, now()) ON CONFLICT (service)"
                " DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
                (state.service, json.dumps(state.to_dict(), default=str)),
            )

    def append_history(self, entry: dict[str, Any]) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO strangler_plan_history (service, entry) VALUES (%s, %s)",
                (entry["service"], json.dumps(entry, default=str)),
            )

    def history(self, service: str | None = None) -> list[dict[str, Any]]:
        with self.conn.cursor() as cur:
            if service is None:
                cur.execute("SELECT entry FROM strangler_plan_history ORDER BY id")
            else:
                cur.execute(
                    "SELECT entry FROM strangler_plan_history WHERE service = %s"
                    " ORDER BY id",
                    (service,),
                )
            return [row[0] for row in cur.fetchall()]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def open_store(root: Path | None = None) -> FileStore | PgStore:
    """The control database when ``STRANGLER_CONTROL_DATABASE_URL`` is set, else files."""
    url = os.environ.get(CONTROL_ENV)
    if url:
        if not url.startswith(("postgres://", "postgresql://")):
            raise StoreError(
                f"{CONTROL_ENV}={url.split(':', 1)[0]}:…: the control database must be "
                "PostgreSQL (postgres://…); unset it to use files under var/plan"
            )
        return PgStore(url)
    if root is None:
        from strangler.conf import REPO_ROOT

        root = Path(os.environ.get("STRANGLER_VAR_DIR") or REPO_ROOT / "var") / "plan"
    return FileStore(root)
