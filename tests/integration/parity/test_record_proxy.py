"""``parity record --listen``: a real recording proxy in front of a real upstream."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, str, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append(
            (self.command, self.path, self.headers.get("Authorization", ""), body)
        )
        payload = json.dumps({"method": self.command, "path": self.path}).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream():
    _Upstream.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("recording proxy did not start listening")


def test_recording_proxy_forwards_and_records_scrubbed_requests(tmp_path, upstream):
    rules = tmp_path / "rules.yaml"
    rules.write_text("parity:\n  scrub: [password]\n")
    corpus = tmp_path / "corpus.jsonl"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "strangler", "parity", "record", "--out", str(corpus),
         "--rules", str(rules), "--listen", f"127.0.0.1:{port}", "--upstream", upstream,
         "--limit", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_listening(port, proc)
        base = f"http://127.0.0.1:{port}"
        listed = requests.get(f"{base}/api/votes/?question=3&page=2", timeout=10)
        created = requests.post(
            f"{base}/api/auth/token/",
            json={"username": "alice", "password": "s3cret"},
            timeout=10,
        )
        voted = requests.post(
            f"{base}/api/votes/",
            json={"choice": 7},
            headers={"Authorization": "Bearer real.jwt.token", "Cookie": "sessionid=x"},
            timeout=10,
        )
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (listed.status_code, listed.json()["path"]) == (
        200,
        "/api/votes/?question=3&page=2",
    )
    assert created.status_code == 201 and voted.status_code == 201
    # The upstream saw the real requests, credentials included.
    assert _Upstream.seen[2][2] == "Bearer real.jwt.token"
    assert json.loads(_Upstream.seen[1][3]) == {
        "username": "alice",
        "password": "s3cret",
    }

    lines = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert [(r["method"], r["path"]) for r in lines] == [
        ("GET", "/api/votes/"),
        ("POST", "/api/auth/token/"),
        ("POST", "/api/votes/"),
    ]
    assert lines[0]["query"] == {"question": "3", "page": "2"}
    assert lines[1]["body"]["username"] == "alice"
    assert lines[1]["body"]["password"] != "s3cret"
    assert lines[2]["headers"]["Authorization"].startswith("strangler-identity:")
    assert "real.jwt.token" not in corpus.read_text()
    assert "sessionid" not in corpus.read_text()
