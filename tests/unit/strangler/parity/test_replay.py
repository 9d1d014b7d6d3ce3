"""The replay runner against small real HTTP servers: headers it sends, resume, barriers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from strangler.parity.corpus import CorpusRequest
from strangler.parity.replay import ReplayConfig, StateError, run_corpus


class Backend(ThreadingHTTPServer):
    """Answers JSON describing the request; ``bias`` changes one field."""

    daemon_threads = True

    def __init__(self, bias: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.bias = bias
        self.seen: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Backend

    def handle_one(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        with self.server.lock:
            self.server.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
        answer = json.dumps(
            {"path": self.path, "n": self.server.bias if "bias" in self.path else 0}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = handle_one

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    servers = (Backend(), Backend(bias=1))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    yield servers
    for s in servers:
        s.shutdown()
        s.server_close()


def corpus(n: int = 20) -> list[CorpusRequest]:
    return [
        CorpusRequest("GET", f"/r/{i}/", query={"bias": "1"} if i == 3 else {})
        for i in range(n)
    ]


def test_every_request_compared_and_difference_found(backends):
    primary, candidate = backends
    results = run_corpus(
        corpus(),
        ReplayConfig(primary.url, candidate.url, concurrency=4),
        progress=False,
    )
    assert [r.index for r in results] == list(range(20))
    assert [r.index for r in results if not r.comparison.matched] == [3]
    assert len(primary.seen) == len(candidate.seen) == 20


def test_unsafe_requests_are_dry_runs_with_identity_token_and_one_host(backends):
    primary, candidate = backends
    request = CorpusRequest(
        "POST",
        "/votes/",
        headers={"Authorization": "strangler-identity:alice"},
        body={"choice": 1},
    )
    config = ReplayConfig(
        primary.url,
        candidate.url,
        tokens={"alice": "Bearer T"},
        router_token="R",
        host="example.test:1",
    )
    run_corpus([request], config, progress=False)
    for server in backends:
        [seen] = server.seen
        assert seen["headers"]["Authorization"] == "Bearer T"
        assert seen["headers"]["X-Strangler-Dry-Run"] == "1"
        assert seen["headers"]["X-Strangler-Router-Token"] == "R"
        assert seen["headers"]["X-Forwarded-Host"] == "example.test:1"
        assert seen["headers"]["Content-Type"] == "application/json"
        assert json.loads(seen["body"]) == {"choice": 1}


def test_allow_writes_sends_no_dry_run_header_and_keeps_order_around_writes(backends):
    primary, candidate = backends
    requests = [*corpus(6), CorpusRequest("POST", "/w/"), *corpus(6)]
    config = ReplayConfig(primary.url, candidate.url, allow_writes=True, concurrency=4)
    run_corpus(requests, config, progress=False)
    paths = [s["path"] for s in primary.seen]
    write_at = paths.index("/w/")
    assert (
        write_at == 6
    )  # every read before it finished first, none after it started early
    assert "X-Strangler-Dry-Run" not in primary.seen[write_at]["headers"]


def test_state_file_resumes_without_replaying_finished_requests(backends, tmp_path):
    primary, candidate = backends
    state = tmp_path / "state.jsonl"
    config = ReplayConfig(primary.url, candidate.url, concurrency=3)
    first = run_corpus(corpus(), config, state_path=state, progress=False)
    # Simulate a crash after 12 results, the last line half written.
    lines = state.read_text().splitlines()
    state.write_text("\n".join(lines[:13]) + "\n" + lines[13][:10])
    primary.seen.clear()
    again = run_corpus(corpus(), config, state_path=state, progress=False)
    assert len(primary.seen) == 8
    assert [r.index for r in again] == list(range(20))
    assert [r.comparison.matched for r in again] == [
        r.comparison.matched for r in first
    ]
    primary.seen.clear()
    run_corpus(corpus(), config, state_path=state, progress=False)
    assert primary.seen == []


def test_state_file_of_another_corpus_is_refused(backends, tmp_path):
    primary, candidate = backends
    state = tmp_path / "state.jsonl"
    config = ReplayConfig(primary.url, candidate.url)
    run_corpus(corpus(3), config, state_path=state, progress=False)
    with pytest.raises(
        StateError, match="state belongs to another run \\(corpus_sha256"
    ):
        run_corpus(corpus(4), config, state_path=state, progress=False)


def test_unreachable_candidate_is_a_status_difference(backends):
    primary, _ = backends
    [result] = run_corpus(
        corpus(1),
        ReplayConfig(primary.url, "http://127.0.0.1:9", timeout=2),
        progress=False,
    )
    [diff] = result.comparison.differences
    assert diff.kind == "status" and diff.primary == 200
    assert str(diff.candidate).startswith("request failed: ConnectionError")


class Rendezvous(ThreadingHTTPServer):
    """The primary answers ``met`` only once the candidate has received the same request
    while the primary's was still open: true only when a pair's requests overlap."""

    daemon_threads = True

    def __init__(self, arrived: threading.Event, *, waits: bool) -> None:
        super().__init__(("127.0.0.1", 0), RendezvousHandler)
        self.arrived, self.waits = arrived, waits

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RendezvousHandler(BaseHTTPRequestHandler):
    server: Rendezvous

    def do_GET(self) -> None:
        if self.server.waits:
            met = self.server.arrived.wait(10)  # a bound for failure, not a measurement
        else:
            self.server.arrived.set()
            met = True
        answer = json.dumps({"met": met}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


def test_the_two_requests_of_a_pair_are_sent_concurrently():
    arrived = threading.Event()
    primary = Rendezvous(arrived, waits=True)
    candidate = Rendezvous(arrived, waits=False)
    for server in (primary, candidate):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = ReplayConfig(primary.url, candidate.url, concurrency=1)
        [result] = run_corpus([CorpusRequest("GET", "/meet")], config, progress=False)
    finally:
        for server in (primary, candidate):
            server.shutdown()
    assert result.comparison.matched, result.comparison.to_dict()
    assert json.loads(result.primary.body) == {"met": True}
