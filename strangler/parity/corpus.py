"""The corpus: one request per JSONL line, credentials replaced by a test identity marker.

A line looks like::

    {"method": "POST", "path": "/api/votes/", "query": {"page": "2"},
     "headers": {"Authorization": "strangler-identity:default"},
     "body": {"choice": 3}, "endpoint": "POST /api/votes/"}

``body`` is any JSON value (sent JSON-encoded); ``body_raw`` is a string sent as it is (for
malformed input). ``query`` values are strings or lists of strings. The marker
``strangler-identity:NAME`` in ``Authorization`` is replaced at replay by a real token for
the identity ``NAME``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from strangler.compare.rules import METHODS, normalise_path

IDENTITY_PREFIX = "strangler-identity:"
DEFAULT_IDENTITY = "default"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
SCRUBBED = "[scrubbed]"
_LINE_KEYS = {"method", "path", "query", "headers", "body", "body_raw", "endpoint"}


class CorpusError(ValueError):
    """A corpus line that cannot be replayed; the message names the file, line and fix."""


@dataclass(frozen=True)
class CorpusRequest:
    """One request to replay."""

    method: str
    path: str
    query: Mapping[str, str | list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    body_raw: str | None = None
    endpoint: str = ""

    @property
    def is_safe(self) -> bool:
        return self.method in SAFE_METHODS

    @property
    def target(self) -> str:
        """Path and query string, as sent."""
        if not self.query:
            return self.path
        return f"{self.path}?{urlencode(dict(self.query), doseq=True)}"

    @property
    def identity(self) -> str | None:
        value = _header(self.headers, "authorization")
        if value and value.startswith(IDENTITY_PREFIX):
            return value[len(IDENTITY_PREFIX) :]
        return None

    def encoded_body(self) -> bytes | None:
        if self.body_raw is not None:
            return self.body_raw.encode()
        if self.body is None:
            return None
        return json.dumps(self.body).encode()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.query:
            data["query"] = dict(self.query)
        if self.headers:
            data["headers"] = dict(self.headers)
        if self.body is not None:
            data["body"] = self.body
        if self.body_raw is not None:
            data["body_raw"] = self.body_raw
        data["endpoint"] = self.endpoint or normalise_path(self.method, self.path)
        return data


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def scrub_request(
    request: CorpusRequest,
    *,
    identity: str = DEFAULT_IDENTITY,
    fields: Iterable[str] = (),
) -> CorpusRequest:
    """Replace credentials by the identity marker and blank the named fields everywhere."""
    names = {f.lower() for f in fields}
    headers = {}
    for key, value in request.headers.items():
        lowered = key.lower()
        if lowered == "authorization":
            headers[key] = f"{IDENTITY_PREFIX}{identity}"
        elif lowered in CREDENTIAL_HEADERS or lowered in names:
            continue
        else:
            headers[key] = value
    query = {
        k: (SCRUBBED if k.lower() in names else v) for k, v in request.query.items()
    }
    return CorpusRequest(
        method=request.method,
        path=request.path,
        query=query,
        headers=headers,
        body=_scrub_value(request.body, names),
        body_raw=request.body_raw,
        endpoint=request.endpoint,
    )


def _scrub_value(value: Any, names: set[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: SCRUBBED if k.lower() in names else _scrub_value(v, names)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_value(v, names) for v in value]
    return value


def parse_line(
    line: str, *, source: str = "<corpus>", lineno: int = 0
) -> CorpusRequest:
    """One corpus line to a request; raises CorpusError naming the line and the fix."""
    where = f"{source}:{lineno}"
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise CorpusError(f"{where}: not valid JSON ({exc.args[0]})") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{where}: each line must be a JSON object")
    unknown = sorted(set(data) - _LINE_KEYS)
    if unknown:
        raise CorpusError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_LINE_KEYS))})"
        )
    method = data.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise CorpusError(
            f"{where}: key 'method': {method!r} is not one of {', '.join(sorted(METHODS))}"
        )
    path = data.get("path")
    if not isinstance(path, str) or not path.startswith("/") or "?" in path:
        raise CorpusError(
            f"{where}: key 'path': {path!r} must start with '/' and hold no query string "
            "(put parameters under 'query')"
        )
    query = data.get("query") or {}
    if not isinstance(query, dict) or not all(
        isinstance(v, str)
        or (isinstance(v, list) and all(isinstance(i, str) for i in v))
        for v in query.values()
    ):
        raise CorpusError(
            f"{where}: key 'query': must map names to strings or lists of strings"
        )
    headers = data.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(v, str) for v in headers.values()
    ):
        raise CorpusError(f"{where}: key 'headers': must map names to strings")
    if "body" in data and "body_raw" in data:
        raise CorpusError(f"{where}: give 'body' (JSON) or 'body_raw' (text), not both")
    body_raw = data.get("body_raw")
    if body_raw is not None and not isinstance(body_raw, str):
        raise CorpusError(f"{where}: key 'body_raw': must be a string")
    endpoint = data.get("endpoint") or ""
    if not isinstance(endpoint, str):
        raise CorpusError(f"{where}: key 'endpoint': must be a string")
    return CorpusRequest(
        method=method.upper(),
        path=path,
        query=query,
        headers=headers,
        body=data.get("body"),
        body_raw=body_raw,
        endpoint=endpoint,
    )


def read_corpus(path: str | Path) -> list[CorpusRequest]:
    """Every request in a JSONL corpus file (blank lines skipped)."""
    source = Path(path)
    try:
        text = source.read_text()
    except OSError as exc:
        raise CorpusError(f"{source}: cannot read corpus ({exc.strerror})") from None
    requests = [
        parse_line(line, source=str(source), lineno=number)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not requests:
        raise CorpusError(
            f"{source}: the corpus is empty (run 'strangler parity generate')"
        )
    return requests


def iter_lines(requests: Iterable[CorpusRequest]) -> Iterator[str]:
    for request in requests:
        yield json.dumps(request.to_dict(), sort_keys=True) + "\n"


def write_corpus(path: str | Path, requests: Iterable[CorpusRequest]) -> int:
    """Write requests as JSONL; returns how many."""
    count = 0
    with Path(path).open("w") as out:
        for line in iter_lines(requests):
            out.write(line)
            count += 1
    return count
