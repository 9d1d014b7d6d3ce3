"""The C data path (router/_engine.c, router/engine.py) against scripted raw backends: it
sends the backend the same bytes and the client the same answer as the Python path,
relays every framing, fails as the Python path fails, and hands the connection to Python
for everything it does not serve, which then answers it."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from router.engine import Engine
from tests.integration.router.scripted import Conn, answer, keep_alive, plain_config

pytestmark = pytest.mark.skipif(
    Engine is None, reason="the C data path is not built (scripts/build_engine)"
)


class Client:
    """A raw client connection that reads whole answers of any framing."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            assert self._fill(), "closed mid-answer"
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            assert self._fill(), "closed mid-answer"
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def answer(
        self, head_only: bool = False
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"closed before an answer: {self.buffer!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:]]
        names = {n.lower(): v for n, v in headers}
        if head_only or status in (204, 304) or status < 200:
            return status, headers, b""
        if "content-length" in names:
            return status, headers, self._take(int(names["content-length"]))
        assert names.get("transfer-encoding") == "chunked", headers
        body = b""
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                self._line()
                return status, headers, body
            body += self._take(size)
            self._take(2)

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def close(self) -> None:
        self.sock.close()


def _get(path: str = "/q", extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: front\r\n%s\r\n" % (path.encode(), extra)


def _counts(router) -> dict:
    return router.datapath.counts()


def _counts_become(router, **want: int) -> None:
    """The engine's counts reach ``want``: the router's thread may still be finishing the
    request whose answer the client already read."""
    deadline = time.monotonic() + 2
    while _counts(router) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _counts(router) == want


def _header(headers, name: str) -> str | None:
    for n, v in headers:
        if n.lower() == name:
            return v
    return None


@pytest.fixture
def pair(scripted, router_thread):
    """One echo backend; a router on the C data path and one on the Python path."""

    def echo(conn: Conn) -> None:
        while (req := conn.request()) is not None:
            reply = answer(req, extra=b"X-Kept: yes \r\nKeep-Alive: timeout=5\r\n")
            if req.startswith(b"HEAD "):  # the head alone, with the length a GET gets
                reply = reply[: reply.index(b"\r\n\r\n") + 4]
            conn.send(reply)

    backend = scripted(echo)
    config = plain_config(backend.url)
    return backend, router_thread(config, engine=True), router_thread(config)


@pytest.fixture
def pair_of(scripted, router_thread):
    """A router on the C data path and one on the Python path, both in front of one
    backend running ``handler``."""

    def start(handler):
        config = plain_config(scripted(handler).url)
        return router_thread(config, engine=True), router_thread(config)

    return start


REQUESTS = [
    _get("/a/b?x=1&y=2"),
    _get(
        "/a/b?x=1", b"X-Note: kept \t\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\n"
    ),
    b"POST /votes/ HTTP/1.1\r\nHost: front\r\nContent-Type: application/json\r\n"
    b'Content-Length: 11\r\nX-Request-ID: given-id-1\r\n\r\n{"vote": 1}',
    b"DELETE /votes/7/ HTTP/1.1\r\nHost: front\r\nX-Forwarded-Host: outer\r\n\r\n",
    b"HEAD /q HTTP/1.1\r\nHost: front\r\nX-Strangler-Dry-Run: 1\r\nTE: trailers\r\n\r\n",
]


def test_the_backend_and_the_client_see_what_the_python_path_gives(pair):
    backend, engine, python = pair
    seen = {}
    for name, router in (("engine", engine), ("python", python)):
        client = Client(router.url)
        answers = []
        for request in REQUESTS:
            client.send(request)
            answers.append(client.answer(head_only=request.startswith(b"HEAD")))
        client.close()
        sent = backend.requests[-len(REQUESTS) :]
        seen[name] = (sent, answers)
    assert _counts(engine)["answered"] == len(REQUESTS)
    assert _counts(engine)["handed_off"] == 0

    def without_id(data: bytes) -> bytes:
        return b"\r\n".join(
            line
            if not line.lower().startswith(b"x-request-id:")
            else b"x-request-id: *"
            for line in data.split(b"\r\n")
        )

    for e_req, p_req in zip(seen["engine"][0], seen["python"][0], strict=True):
        assert without_id(e_req) == without_id(p_req)
    for e_ans, p_ans in zip(seen["engine"][1], seen["python"][1], strict=True):
        e_status, e_headers, e_body = e_ans
        p_status, p_headers, p_body = p_ans
        assert e_status == p_status
        assert [h for h in e_headers if h[0] != "x-request-id"] == [
            h for h in p_headers if h[0] != "x-request-id"
        ]
        assert without_id(e_body) == without_id(p_body)
    # a given id is kept, others are made; the one the client gets is the one sent
    post_answer = seen["engine"][1][2]
    assert _header(post_answer[1], "x-request-id") == "given-id-1"
    assert b"x-request-id: given-id-1\r\n" in seen["engine"][0][2]
    assert b"x-strangler-dry-run" not in seen["engine"][0][4].lower()


def test_what_it_does_not_serve_goes_to_python_which_answers(scripted, router_thread):
    backend = scripted(keep_alive)
    config = (
        f"backends:\n  b: {{url: '{backend.url}'}}\n  c: {{url: '{backend.url}'}}\n"
        "routes:\n  - {name: plain, path: /**, to: b}\n"
        "  - {name: canaried, path: /c/**, to: b, canary: {to: c, percent: 50}}\n"
    )
    router = router_thread(config, engine=True, operator_token="op")
    cases = [
        b"GET /q HTTP/1.0\r\nHost: front\r\n\r\n",
        b"POST /q HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /q HTTP/1.1\r\nHost: f\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
        _get("/c/1"),
        _get("/q", b"X-Strangler-Backend: b\r\nX-Strangler-Operator-Token: op\r\n"),
        _get("/a%20b"),
        _get("/metrics"),
        _get("/_strangler/healthz"),
    ]
    back = 0
    for number, request in enumerate(cases, start=1):
        client = Client(router.url)
        client.send(request)
        status, _, body = client.answer()
        if b"Expect" in request:  # the interim 100 Continue, then the answer
            assert status == 100
            status, _, body = client.answer()
        assert status == 200, (request, body)
        if b"HTTP/1.0" in request:  # not kept alive: it ends there
            _counts_become(router, answered=back, handed_off=number, taken_back=back)
        else:
            # Answered, the connection goes back to the engine, which serves the next
            # plain request on it.
            back += 1
            _counts_become(
                router, answered=back - 1, handed_off=number, taken_back=back
            )
            client.send(_get("/after"))
            assert client.answer()[0] == 200
            _counts_become(router, answered=back, handed_off=number, taken_back=back)
        client.close()
    assert back == len(cases) - 1


def test_a_connection_moving_between_the_paths_answers_every_request_in_order(
    scripted, router_thread
):
    """Plain requests (the engine's) and canaried ones (Python's) on one kept-alive
    connection, one at a time and pipelined: each answer in order, and the connection
    goes back to the engine after each of Python's."""

    def echo(conn: Conn) -> None:  # answers with the path it was asked for
        while (req := conn.request()) is not None:
            conn.send(answer(req.split(b" ", 2)[1]))

    backend = scripted(echo)
    config = (
        f"backends:\n  b: {{url: '{backend.url}'}}\n  c: {{url: '{backend.url}'}}\n"
        "routes:\n  - {name: plain, path: /**, to: b}\n"
        "  - {name: canaried, path: /c/**, to: b, canary: {to: c, percent: 50}}\n"
    )
    router = router_thread(config, engine=True)
    client = Client(router.url)
    post = b"POST /c/w HTTP/1.1\r\nHost: f\r\nContent-Length: 5\r\n\r\nhello"
    rounds = [
        [_get("/p1")],
        [_get("/c/1")],
        [_get("/p2")],
        [post, _get("/p3")],  # Python's, then the engine's, in one write
        [_get("/p4"), _get("/c/2"), _get("/p5")],
        [_get("/c/3")],
        [_get("/c/4")],
        [_get("/p6")],
    ]
    for requests in rounds:
        client.send(b"".join(requests))
        for request in requests:
            status, _, body = client.answer()
            assert (status, body) == (200, request.split(b" ", 2)[1])
    # Handed over at each canaried request, given back after it; a plain request behind
    # one in the same write is Python's too (/p3, /p5); /p1, /p2, /p4 and /p6 the engine's.
    _counts_become(router, answered=4, handed_off=5, taken_back=5)


def test_pipelined_requests_are_answered_in_order(pair):
    _, engine, _ = pair
    client = Client(engine.url)
    client.send(_get("/one") + _get("/two") + _get("/three"))
    bodies = [client.answer()[2] for _ in range(3)]
    assert [b.split(b" ", 2)[1] for b in bodies] == [b"/one", b"/two", b"/three"]
    assert _counts(engine)["answered"] == 3


def _streamer(kind: str):
    def handler(conn: Conn) -> None:
        while conn.request() is not None:
            if kind == "chunked":
                conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for part in (b"hello ", b"chunked ", b"world"):
                    time.sleep(0.05)
                    conn.send(b"%x\r\n%s\r\n" % (len(part), part))
                conn.send(b"0\r\nX-Trailer: t\r\n\r\n")
            elif kind == "close":
                conn.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
                return
            else:
                body = bytes(range(256)) * 4096  # 1 MiB
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                conn.send(body)

    return handler


@pytest.mark.parametrize("kind", ["chunked", "close", "large"])
def test_every_framing_is_relayed_whole_and_the_connection_kept(
    scripted, router_thread, kind
):
    backend = scripted(_streamer(kind))
    router = router_thread(plain_config(backend.url), engine=True)
    client = Client(router.url)
    for _ in range(2):
        client.send(_get("/s"))
        if kind == "large":
            time.sleep(0.3)  # a slow reader: the engine holds the backend back
        status, _, body = client.answer()
        assert status == 200
        expected = {
            "chunked": b"hello chunked world",
            "close": b"until the end",
            "large": bytes(range(256)) * 4096,
        }[kind]
        assert body == expected
    assert _counts(router)["answered"] == 2


def test_a_stale_kept_alive_connection_is_retried_for_reads_only(
    scripted, router_thread
):
    def once_then_hang_up(conn: Conn) -> None:
        if conn.request() is not None:
            conn.send(answer(b"first"))
        conn.request()  # the next request on this connection: read, never answered
        # (a backend closing an idle connection just as the router reuses it)

    backend = scripted(once_then_hang_up)
    router = router_thread(plain_config(backend.url), engine=True)
    client = Client(router.url)
    client.send(_get("/1"))
    assert client.answer()[2] == b"first"
    client.send(_get("/2"))  # on the kept-alive connection, which hangs up: sent again
    assert client.answer()[2] == b"first"
    assert len(backend.requests) == 3
    client.send(b"POST /3 HTTP/1.1\r\nHost: f\r\nContent-Length: 1\r\n\r\nx")
    status, _, body = client.answer()  # a write is never sent twice
    assert status == 502
    assert json.loads(body)["error"] == {
        "code": "backend_error",
        "message": "Backend 'b' failed: connection closed by the backend.",
    }
    assert len(backend.requests) == 4


def test_a_backend_that_does_not_answer_is_a_504_naming_it(scripted, router_thread):
    release = threading.Event()

    def silent(conn: Conn) -> None:
        conn.request()
        release.wait(10)

    backend = scripted(silent)
    router = router_thread(plain_config(backend.url, read_timeout=0.3), engine=True)
    client = Client(router.url)
    started = time.monotonic()
    client.send(_get("/wait"))
    status, headers, body = client.answer()
    release.set()
    assert status == 504
    assert 0.3 <= time.monotonic() - started < 3
    assert json.loads(body) == {
        "error": {
            "code": "backend_timeout",
            "message": "Backend 'b' did not answer in time.",
        }
    }
    assert _header(headers, "x-strangler-route") == "plain; backend=b; version=1"
    client.send(_get("/next"))  # the client's connection is still good
    assert client.answer()[0] in (502, 504)  # the backend, released, hangs up now


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length : 2\r\n",  # whitespace before the colon (RFC 9112 5.1)
        b"Content-Length: 2\r\nX-A: 1\r\n folded\r\n",  # obs-fold
        b"Content-Length: 2\r\nX-A: a\x01b\r\n",  # a control in a value
        b"Content-Length: 2\r\n: empty\r\n",  # no name
    ],
)
def test_a_malformed_answer_head_is_a_502_on_both_paths(pair_of, head):
    """A head the backend got wrong is refused, never relayed: passed on, "Content-Length
    : 2" was a length the client read and the engine did not, which re-chunked it."""

    def bad(conn: Conn) -> None:
        while conn.request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\n" + head + b"\r\nok")

    for router in pair_of(bad):
        client = Client(router.url)
        client.send(_get("/x"))
        status, _, body = client.answer()
        assert status == 502, (router.engine, head)
        assert json.loads(body)["error"]["code"] == "backend_error"


@pytest.mark.parametrize("apart", [False, True])
def test_an_interim_answer_is_dropped_and_the_real_one_relayed_on_both_paths(
    pair_of, apart
):
    """A 103 Early Hints before the answer, in the same read or apart. The Python path
    used to relay the 103's head as a 200 with an empty body, and lose the answer."""

    def hints(conn: Conn) -> None:
        while (req := conn.request()) is not None:
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n")
            if apart:
                time.sleep(0.05)
            conn.send(answer(req.split(b" ")[1]))

    for router in pair_of(hints):
        client = Client(router.url)
        for path in ("/first", "/second"):  # the connection stays in step
            client.send(_get(path))
            status, headers, body = client.answer()
            assert (status, body) == (200, path.encode()), router.engine
            assert _header(headers, "link") is None


@pytest.mark.parametrize("fails", [False, True])
def test_an_answer_during_the_drain_says_the_connection_ends(
    scripted, router_thread, fails
):
    """Once SIGTERM stopped accepting, an answer in flight ends its connection, and says
    so: relayed from the backend, or the engine's own 504."""
    release, asked = threading.Event(), threading.Event()

    def slow(conn: Conn) -> None:
        while (req := conn.request()) is not None:
            asked.set()
            release.wait(10)
            if not fails:
                conn.send(answer(req))

    backend = scripted(slow)
    router = router_thread(plain_config(backend.url, read_timeout=1.0), engine=True)
    client = Client(router.url)
    client.send(_get("/slow"))
    assert asked.wait(5)
    router.loop.call_soon_threadsafe(router.datapath.stop_accepting)
    time.sleep(0.2)
    if not fails:
        release.set()
    status, headers, _ = client.answer()
    release.set()
    assert status == (504 if fails else 200)
    assert _header(headers, "connection") == "close"
    assert client.closed()


def test_a_backend_dying_mid_answer_closes_the_clients_connection(
    scripted, router_thread
):
    def dies(conn: Conn) -> None:
        conn.request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        conn.sock.close()

    backend = scripted(dies)
    router = router_thread(plain_config(backend.url), engine=True)
    client = Client(router.url)
    client.send(_get("/x"))
    data = b""
    while chunk := client.sock.recv(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"partial")


def test_5xx_opens_the_breaker_and_python_answers_while_it_is_open(
    scripted, router_thread
):
    def fails(conn: Conn) -> None:
        while conn.request() is not None:
            conn.send(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail"
            )

    backend = scripted(fails)
    config = plain_config(backend.url) + "settings: {breaker_failures: 3}\n"
    router = router_thread(config, engine=True)
    for _ in range(3):
        client = Client(router.url)
        client.send(_get("/x"))
        assert client.answer()[0] == 500
        client.close()
    assert router.router.breakers["b"].state == "open"
    client = Client(router.url)
    client.send(_get("/x"))
    status, _, body = client.answer()
    assert status == 503
    assert json.loads(body)["error"]["code"] == "circuit_open"
    _counts_become(router, answered=3, handed_off=1, taken_back=1)


def test_a_write_refused_owned_elsewhere_is_sent_again_by_python(
    scripted, router_thread
):
    refusal = json.dumps(
        {"error": {"code": "owned_elsewhere", "message": "vote is owned elsewhere"}}
    ).encode()

    def moving(conn: Conn) -> None:
        while conn.request() is not None:
            if len(conn.backend.requests) == 1:
                conn.send(
                    b"HTTP/1.1 409 Conflict\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(refusal), refusal)
                )
            else:
                conn.send(answer(b"created"))

    backend = scripted(moving)
    router = router_thread(plain_config(backend.url), engine=True)
    client = Client(router.url)
    client.send(b"POST /votes/ HTTP/1.1\r\nHost: f\r\nContent-Length: 2\r\n\r\n{}")
    status, _, body = client.answer()
    assert (status, body) == (200, b"created")
    assert len(backend.requests) == 2
    assert (
        backend.requests[0].split(b"\r\n\r\n", 1)[1]
        == b"{}"
        == (backend.requests[1].split(b"\r\n\r\n", 1)[1])
    )
    _counts_become(router, answered=0, handed_off=1, taken_back=1)


def test_a_backend_that_refuses_connections_gets_pythons_502(router_thread):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    router = router_thread(plain_config(dead), engine=True)
    client = Client(router.url)
    client.send(_get("/x"))
    status, _, body = client.answer()
    assert status == 502
    assert json.loads(body)["error"]["code"] == "backend_unreachable"
    assert _counts(router)["handed_off"] == 1


def test_a_shadowed_read_is_answered_by_the_engine_and_compared_by_python(
    scripted, router_thread
):
    def same(conn: Conn) -> None:
        while conn.request() is not None:
            conn.send(answer(b'{"a": 1}', extra=b"Content-Type: application/json\r\n"))

    primary, shadow = scripted(same), scripted(same)
    config = (
        f"backends:\n  b: {{url: '{primary.url}'}}\n  s: {{url: '{shadow.url}'}}\n"
        "routes:\n  - {name: read, methods: [GET], path: /**, to: b,"
        " shadow: {to: s, percent: 100}}\n"
        "  - {name: write, methods: [POST], path: /**, to: b}\n"
    )
    router = router_thread(config, engine=True)
    client = Client(router.url)
    client.send(_get("/q/1?x=1", b"X-Note: n\r\n"))
    status, _, body = client.answer()
    assert (status, body) == (200, b'{"a": 1}')
    deadline = time.monotonic() + 5
    counts = router.router.shadower.counts.by_route
    while not counts.get("read", {}).get("match") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert counts["read"]["match"] == 1
    _counts_become(router, answered=1, handed_off=0, taken_back=0)
    # the shadow got the primary's request: same target, headers and request id
    assert shadow.requests[0].replace(b"127.0.0.1:%d" % shadow.port, b"H") == (
        primary.requests[0].replace(b"127.0.0.1:%d" % primary.port, b"H")
    )
