"""``parity record``: build a corpus from real traffic, through a recording proxy or from
the router's shadow records, with credentials replaced by the test identity and the
fields named in the rules' ``scrub`` list blanked.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlsplit

import requests

from strangler.compare.rules import normalise_path
from strangler.parity.corpus import CorpusRequest, iter_lines, scrub_request
from strangler.parity.records import read_records

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
}  # fmt: skip
# Request headers worth replaying; the rest (user agents, tracing) only add noise.
KEPT_HEADERS = {"authorization", "content-type", "accept", "accept-language"}


def request_from(
    method: str, target: str, headers: dict[str, str], body: bytes
) -> CorpusRequest:
    """A corpus request from what was seen on the wire."""
    parts = urlsplit(target)
    query = {
        k: v[0] if len(v) == 1 else v
        for k, v in parse_qs(parts.query, keep_blank_values=True).items()
    }
    kept = {k: v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
    parsed, raw = None, None
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            raw = body.decode("utf-8", errors="replace")
    return CorpusRequest(
        method=method.upper(),
        path=parts.path or "/",
        query=query,
        headers=kept,
        body=parsed,
        body_raw=raw,
        endpoint=normalise_path(method, parts.path or "/"),
    )


def from_shadow_records(
    path: str | Path, *, scrub: Iterable[str] = ()
) -> list[CorpusRequest]:
    """The requests behind shadow records (their bodies are not recorded: reads only);
    a request that carried credentials runs as the test identity."""
    fields = list(scrub)
    return [
        scrub_request(
            request_from(r.method, r.path, r.request_headers, b""), fields=fields
        )
        for r in read_records(path)
        if r.method in {"GET", "HEAD", "OPTIONS"}
    ]


class RecordingProxy(ThreadingHTTPServer):
    """Forwards every request to ``upstream`` and appends it, scrubbed, to the corpus."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        upstream: str,
        out: IO[str],
        *,
        scrub: Iterable[str] = (),
        limit: int | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.upstream = upstream.rstrip("/")
        self.out = out
        self.scrub = list(scrub)
        self.limit = limit
        self.recorded = 0
        self.lock = threading.Lock()
        self.session = requests.Session()

    def record(self, request: CorpusRequest) -> None:
        with self.lock:
            for line in iter_lines([scrub_request(request, fields=self.scrub)]):
                self.out.write(line)
            self.out.flush()
            self.recorded += 1
            if self.limit is not None and self.recorded >= self.limit:
                threading.Thread(target=self.shutdown, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    server: RecordingProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            answer = self.server.session.request(
                self.command,
                self.server.upstream + self.path,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=30,
            )
        except requests.RequestException as exc:
            self.send_error(502, f"upstream unreachable: {exc}")
            return
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-encoding":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.content)
        self.server.record(
            request_from(self.command, self.path, dict(self.headers), body)
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward

    def log_message(self, format: str, *args: object) -> None:
        print(f"parity record: {format % args}", file=sys.stderr)
