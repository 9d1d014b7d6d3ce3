"""The router's logs: JSON lines on stdout, and the access log, which is formatted by hand
and written in batches (every 0.2 s or 256 lines) because ``logging`` plus ``json.dumps``
per request cost a quarter of the router's CPU."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time

FLUSH_SECONDS = 0.2
FLUSH_LINES = 256


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def configure_logging() -> None:
    root = logging.getLogger("router")
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLines())
    root.addHandler(handler)
    root.setLevel(os.environ.get("ROUTER_LOG_LEVEL", "INFO").upper())
    root.propagate = False


class AccessLog:
    """One JSON line per request, the same shape ``JsonLines`` gives the ``router.access``
    logger, buffered and flushed from the event loop."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.lines: list[str] = []
        self.flush_handle: asyncio.TimerHandle | None = None
        self._second = -1
        self._ts = ""

    def add(
        self,
        request_id: str,
        method: str,
        path: str,
        status: int,
        route_and_backend: str,
        version: int | None,
        seconds: float,
    ) -> None:
        """``seconds`` is logged as ``ms`` with three decimals, by integer arithmetic:
        ``round`` and a float's repr each run the slow exact decimal conversion."""
        us = int(seconds * 1_000_000 + 0.5)
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))
        self.lines.append(
            f'{{"ts": "{self._ts}", "level": "info", "logger": "router.access", '
            f'"message": "request", "request_id": "{request_id}", "method": "{method}", '
            f'"path": {_json_str(path)}, "status": {status}, {route_and_backend}, '
            f'"version": {"null" if version is None else version}, '
            f'"ms": {us // 1000}.{us % 1000:03d}}}\n'
        )
        if len(self.lines) >= FLUSH_LINES:
            self.flush()
        elif self.flush_handle is None:
            self.flush_handle = asyncio.get_running_loop().call_later(
                FLUSH_SECONDS, self.flush
            )

    def flush(self) -> None:
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        if self.lines:
            text = "".join(self.lines)
            self.lines = []
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass


def _json_str(text: str) -> str:
    """``json.dumps(text)``, without the encoder for the usual printable-ASCII path."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text)


def route_and_backend(route: str, backend: str) -> str:
    """The access line's ``"route": ..., "backend": ...`` part, computed once per pair."""
    return f'"route": {json.dumps(route)}, "backend": {json.dumps(backend)}'
