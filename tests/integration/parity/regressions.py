"""A copy of the monolith with one deliberate regression in its votes API, for parity tests.

``PARITY_REGRESSION_FILE`` names a file holding the regression to apply (re-read on every
request, so a test switches regressions without restarting): ``renamed_field``,
``wrong_count``, ``changed_status``, ``different_order``, ``missing_page`` or nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from monolith.config.wsgi import application as monolith


def _regression() -> str:
    path = os.environ.get("PARITY_REGRESSION_FILE")
    return Path(path).read_text().strip() if path and Path(path).exists() else ""


def _apply(
    name: str, environ: dict[str, Any], status: str, body: bytes
) -> tuple[str, bytes]:
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if not path.startswith("/api/votes/"):
        return status, body
    if name == "changed_status" and method == "POST" and status.startswith("201"):
        return "200 OK", body
    if name == "missing_page" and method == "GET" and "page=2" in query.split("&"):
        error = {"error": {"code": "not_found", "message": "Invalid page."}}
        return "404 Not Found", json.dumps(error).encode()
    if method != "GET" or not status.startswith("200"):
        return status, body
    data = json.loads(body)
    items = (
        data.get("results") if isinstance(data, dict) and "results" in data else None
    )
    if name == "renamed_field":
        for item in items if items is not None else [data]:
            item["choice_id"] = item.pop("choice")
    elif name == "wrong_count" and items is not None:
        data["count"] += 1
    elif name == "different_order" and items is not None:
        data["results"] = list(reversed(items))
    return status, json.dumps(data).encode()


def application(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    name = _regression()
    if not name:
        return monolith(environ, start_response)
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        captured.update(status=status, headers=headers)
        return lambda data: None

    chunks = monolith(environ, capture)
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    status, body = _apply(name, environ, captured["status"], body)
    headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]
