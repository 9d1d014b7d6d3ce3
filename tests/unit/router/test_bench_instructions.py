"""The router bench's ``--instructions`` mode (scripts/bench/router): wrk stops at a fixed
number of answers, and callgrind's count is read from its dump."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import router_bench

VALGRIND = shutil.which("valgrind")
WRK = shutil.which("wrk")


@pytest.fixture(scope="module")
def bench():
    return router_bench.load("bench_router_ins")


def _callgrind(tmp_path: Path, name: str, code: str) -> Path:
    out = tmp_path / f"callgrind.{name}"
    subprocess.run(
        [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={out}",
         sys.executable, "-S", "-c", code],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return out


@pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed")
def test_callgrind_total_is_the_dumps_instruction_count(bench, tmp_path):
    idle = bench.callgrind_total(_callgrind(tmp_path, "idle", "pass"))
    busy = bench.callgrind_total(
        _callgrind(tmp_path, "busy", "sum(i * i for i in range(1_000_000))")
    )
    assert idle > 1_000_000  # the interpreter's start alone
    assert busy - idle > 20_000_000  # a million generator steps at least 20 each
    (tmp_path / "not-a-dump").write_text("events: Ir\nfn=main\n1 5\n")
    with pytest.raises(ValueError, match="not-a-dump: no totals"):
        bench.callgrind_total(tmp_path / "not-a-dump")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.mark.skipif(WRK is None, reason="wrk is not installed")
def test_wrk_count_stops_at_the_number_asked(bench, tmp_path):
    """wrk's own -d is 600 s: the count ends the run, not the clock."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = tmp_path / "bench.lua"
    script.write_text(bench.WRK_SCRIPT)
    try:
        started = time.monotonic()
        answered = bench._wrk_count(
            f"http://127.0.0.1:{server.server_address[1]}/", "GET", 300, script, ""
        )
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert 300 <= answered <= 310  # the 4 connections' last answers may count too
    assert took < 60
    assert not list(tmp_path.glob("done-*"))
