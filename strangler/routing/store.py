"""The versioned router config store: numbered versions, a ``current`` pointer, a history.

Layout of the directory (``STRANGLER_ROUTER_DIR``, default ``var/router/``)::

    versions/000001.yaml   one immutable file per version
    current                the live version number, replaced by atomic rename
    history.jsonl          append-only: {version, parent, action, who, when, why}
    shadow.jsonl           one record per shadow comparison (strangler.parity.records), written by the router

Every change validates the full new config before anything is written, takes an exclusive
lock, writes the version file, appends the history line and only then moves ``current``.
A rollback is a new version whose content is an old one's, so history only grows.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strangler.routing.schema import RouterConfig, load_config

_VERSION_FILE = re.compile(r"^(\d{6,})\.yaml$")
DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "var" / "router"


class StoreError(Exception):
    """The store cannot do what was asked; the message names the file and the fix."""


def store_dir() -> Path:
    return Path(os.environ.get("STRANGLER_ROUTER_DIR") or DEFAULT_DIR)


@dataclass(frozen=True)
class Live:
    version: int
    text: str
    config: RouterConfig


def _who() -> str:
    explicit = os.environ.get("STRANGLER_ACTOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _atomic_write(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RouteStore:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else store_dir()
        self.versions = self.root / "versions"
        self.current_file = self.root / "current"
        self.history_file = self.root / "history.jsonl"

    def version_path(self, version: int) -> Path:
        return self.versions / f"{version:06d}.yaml"

    def current_version(self) -> int | None:
        try:
            raw = self.current_file.read_text().strip()
        except FileNotFoundError:
            return None
        if not raw.isdigit():
            raise StoreError(
                f"{self.current_file}: holds {raw!r}, not a version number; fix: "
                "`strangler route rollback --to N` with a version from `route history`"
            )
        return int(raw)

    def read(self, version: int) -> str:
        path = self.version_path(version)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StoreError(
                f"{path}: version {version} does not exist; fix: pick one from "
                "`strangler route history`"
            ) from None

    def live(self) -> Live:
        version = self.current_version()
        if version is None:
            raise StoreError(
                f"{self.root}: no router config yet; fix: `strangler route apply "
                "router/config.example.yaml --why 'initial routes'`"
            )
        text = self.read(version)
        return Live(
            version, text, load_config(text, source=str(self.version_path(version)))
        )

    def history(self) -> list[dict[str, Any]]:
        try:
            lines = self.history_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.versions.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _next_version(self) -> int:
        numbers = [
            int(m.group(1))
            for p in self.versions.iterdir()
            if (m := _VERSION_FILE.match(p.name))
        ]
        return max(numbers, default=0) + 1

    def commit(
        self,
        text: str,
        *,
        action: str,
        why: str,
        who: str | None = None,
        expect_parent: int | bool | None = False,
    ) -> int:
        """Validate ``text`` fully, then write it as the next version and make it live.

        ``expect_parent`` (when not False) guards a read-modify-write: the commit is refused
        if another change landed since the caller read that version.
        """
        if not why or not why.strip():
            raise StoreError("every change needs a reason; fix: pass --why '...'")
        load_config(text, source="(new version)")
        with self._locked():
            parent = self.current_version()
            if expect_parent is not False and parent != expect_parent:
                raise StoreError(
                    f"{self.current_file}: version {parent} went live while this change "
                    f"was prepared from {expect_parent}; fix: run the command again"
                )
            version = self._next_version()
            path = self.version_path(version)
            with open(path, "x", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            entry = {
                "version": version,
                "parent": parent,
                "action": action,
                "who": who or _who(),
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "why": why.strip(),
            }
            with open(self.history_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            _atomic_write(self.current_file, f"{version}\n")
        return version
