"""The router's callback path (``Router.fast``): a request for a plain route is sent at once
on a connection at hand and answered from the connection's callbacks, without a Task.

The real router runs in a thread against scripted raw-socket backends
(``tests/integration/router/scripted.py``); ``fast`` is recorded per request, so every
test shows which path answered.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from router.metrics import REGISTRY
from tests.integration.router.scripted import (
    Conn,
    RouterThread,
    Scripted,
    answer,
    keep_alive,
    plain_config,
)


@pytest.fixture
def router_for(router_thread):
    """A router with one plain route to ``backend``."""

    def start(backend: Scripted, read_timeout: float = 2.0) -> RouterThread:
        return router_thread(plain_config(backend.url, read_timeout))

    return start


def _requests_total(method: str, status: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "router_requests_total",
            {"route": "plain", "backend": "b", "method": method, "status": status},
        )
        or 0.0
    )


def test_plain_requests_take_the_callback_path_and_get_the_same_answer(
    scripted, router_for
):
    backend = scripted(keep_alive)
    router = router_for(backend)
    before = _requests_total("GET", "200")
    with requests.Session() as client:
        answers = [
            client.get(router.url + "/q/1?x=1", headers={"X-Request-ID": f"r-{i}"})
            for i in range(3)
        ]
    # No connection at hand for the first: the Task path opens one; the rest reuse it.
    assert router.took(3) == [False, True, True]
    assert [a.text for a in answers] == ["ok 1"] * 3
    for i, a in enumerate(answers):
        assert a.headers["X-Strangler-Route"] == "plain; backend=b; version=1"
        assert a.headers["X-Request-ID"] == f"r-{i}"
    task_headers = {k.lower() for k in answers[0].headers}
    assert {k.lower() for k in answers[1].headers} == task_headers
    # What the backend saw is the same on both paths too, but for the request id.
    first, second = (r.replace(b"r-0", b"r-1") for r in backend.requests[:2])
    assert first == second
    assert b"x-forwarded-for: 127.0.0.1\r\n" in second
    assert b"GET /q/1?x=1 HTTP/1.1\r\n" in second
    # The count is taken just after the answer is written: it may trail the client.
    deadline = time.monotonic() + 5
    while _requests_total("GET", "200") - before < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _requests_total("GET", "200") - before == 3


def test_a_backend_that_closes_is_reached_by_raw_connects_on_the_callback_path(
    scripted, router_for
):
    def closing(conn: Conn) -> None:
        if conn.request() is not None:
            conn.send(answer(b"ok %d" % conn.number, close=True))

    backend = scripted(closing)
    router = router_for(backend)
    with requests.Session() as client:
        bodies = [client.get(router.url + "/x").text for _ in range(4)]
        posted = client.post(router.url + "/x", data=b"hello")
    assert bodies == ["ok 1", "ok 2", "ok 3", "ok 4"]
    assert posted.text == "ok 5"
    assert router.took(5) == [False, True, True, True, True]
    assert backend.requests[-1].endswith(b"content-length: 5\r\n\r\nhello")


def test_a_head_and_small_body_written_apart_are_one_answer(scripted, router_for):
    def apart(conn: Conn) -> None:
        while conn.request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
            time.sleep(0.2)
            conn.send(b"hello world")

    router = router_for(scripted(apart))
    with requests.Session() as client:
        answers = [client.get(router.url + "/x") for _ in range(2)]
    assert router.took(2) == [False, True]
    assert [a.text for a in answers] == ["hello world"] * 2
    assert [a.headers["Content-Length"] for a in answers] == ["11", "11"]


def test_a_body_of_unknown_length_streams_while_it_is_written(scripted, router_for):
    """Only a body of known, small length is awaited whole: a chunked one (server-sent
    events, long polls) reaches the client as it comes."""
    rest_may_follow = threading.Event()

    def streaming(conn: Conn) -> None:
        conn.request()
        conn.send(answer(b"warm"))
        conn.request()
        conn.send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
        )
        rest_may_follow.wait(10)
        conn.send(b"4\r\nlast\r\n0\r\n\r\n")

    router = router_for(scripted(streaming))
    with requests.Session() as client:
        assert client.get(router.url + "/warm").text == "warm"
        with client.get(router.url + "/events", stream=True, timeout=5) as events:
            parts = events.iter_content(chunk_size=None)
            assert next(parts) == b"first"  # before the backend has finished
            rest_may_follow.set()
            assert b"".join(parts) == b"last"
    assert router.took(2) == [False, True]


def test_a_large_body_of_known_length_is_streamed_intact(scripted, router_for):
    big = bytes(range(256)) * 4096  # 1 MiB, over what is awaited whole

    def large(conn: Conn) -> None:
        while conn.request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big))
            for start in range(0, len(big), 100_000):
                conn.send(big[start : start + 100_000])

    router = router_for(scripted(large))
    with requests.Session() as client:
        bodies = [client.get(router.url + "/big").content for _ in range(2)]
    assert router.took(2) == [False, True]
    assert bodies == [big, big]


def _drops_the_second_request(conn: Conn) -> None:
    """Answers a connection's first request, then closes on the next without a byte:
    a kept-alive connection the backend had just dropped."""
    if conn.request() is not None:
        conn.send(answer(b"ok %d" % conn.number))
    conn.request()


def test_a_dropped_kept_alive_connection_is_retried_for_a_get(scripted, router_for):
    backend = scripted(_drops_the_second_request)
    router = router_for(backend)
    with requests.Session() as client:
        assert client.get(router.url + "/x").text == "ok 1"
        again = client.get(router.url + "/x")
    assert router.took(2) == [False, True]
    assert (again.status_code, again.text) == (200, "ok 2")
    assert len(backend.requests) == 3  # answered, dropped, answered on a new connection


def test_a_dropped_kept_alive_connection_is_not_retried_for_a_post(
    scripted, router_for
):
    backend = scripted(_drops_the_second_request)
    router = router_for(backend)
    with requests.Session() as client:
        assert client.post(router.url + "/x", data=b"1").text == "ok 1"
        again = client.post(router.url + "/x", data=b"2")
    assert router.took(2) == [False, True]
    assert again.status_code == 502
    assert again.json()["error"]["code"] == "backend_error"
    assert "'b'" in again.json()["error"]["message"]
    assert len(backend.requests) == 2  # the second POST went to the backend once


def test_the_read_timeout_holds_on_the_callback_path(scripted, router_for):
    def silent_second(conn: Conn) -> None:
        conn.request()
        conn.send(answer())
        conn.request()
        time.sleep(3)

    router = router_for(scripted(silent_second), read_timeout=0.5)
    with requests.Session() as client:
        assert client.get(router.url + "/x").text == "ok"
        started = time.monotonic()
        late = client.get(router.url + "/x", timeout=5)
        elapsed = time.monotonic() - started
    assert router.took(2) == [False, True]
    assert late.status_code == 504
    assert late.json()["error"]["code"] == "backend_timeout"
    assert 0.5 <= elapsed < 1.5


def test_a_refused_raw_connect_is_a_502_naming_the_backend(scripted, router_for):
    def closing(conn: Conn) -> None:
        if conn.request() is not None:
            conn.send(answer(close=True))

    backend = scripted(closing)
    router = router_for(backend)
    with requests.Session() as client:
        assert client.get(router.url + "/x").text == "ok"
        backend.stop()
        refused = client.get(router.url + "/x")
    assert router.took(2) == [False, True]
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "backend_unreachable"
    assert refused.headers["X-Strangler-Route"] == "plain; backend=b; version=1"


def _raw_get(url: str, requests_: list[bytes]) -> bytes:
    """Send ``requests_`` on one connection at once (pipelined) and read until as many
    answers have come, and a moment more."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"".join(requests_))
        data = b""
        while data.count(b"HTTP/1.1 ") < len(requests_):
            data += sock.recv(65536)
        sock.settimeout(0.2)
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    return data


def test_the_backends_header_lines_pass_as_sent_less_hop_by_hop(scripted, router_for):
    """The answer's head is filtered as bytes: lines pass in order and case, and only
    hop-by-hop lines and the router's own are cut, whatever their case, on both paths."""
    lines = [
        b"HTTP/1.1 200 OK",
        b"X-First: 1",
        b"CONNECTION: keep-alive",
        b"Keep-Alive: timeout=5",
        b"X-Request-Id: forged",
        b"x-strangler-route: forged",
        b"X-Strangler-Events: vote:1",
        b"Content-Length: 2",
        b"Connection-Extra: stays",
        b"Te-Ah: stays",
        b"X-Last: last",
    ]
    head = b"\r\n".join(lines) + b"\r\n\r\n"

    def odd(conn: Conn) -> None:
        while conn.request() is not None:
            conn.send(head + b"ok")

    router = router_for(scripted(odd))
    with requests.Session() as client:
        answers = [client.get(router.url + "/x") for _ in range(2)]
    assert router.took(2) == [False, True]
    for a in answers:
        assert a.text == "ok"
        names = [k.lower() for k in a.raw.headers]
        assert names[:4] == ["x-first", "content-length", "connection-extra", "te-ah"]
        assert a.headers["X-Last"] == "last"
        assert "keep-alive" not in names and "x-strangler-events" not in names
        assert a.headers["X-Request-ID"] != "forged"
        assert a.headers["X-Strangler-Route"] == "plain; backend=b; version=1"
    raw = _raw_get(router.url, [b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"])
    assert b"X-First: 1\r\nContent-Length: 2\r\nConnection-Extra: stays\r\n" in raw


def test_each_request_on_a_connection_forwards_its_own_headers(scripted, router_for):
    """A connection keeps the last request's worked-out headers for the next one with
    equal headers: requests with other headers, pipelined too, get their own."""
    backend = scripted(keep_alive)
    router = router_for(backend)
    with requests.Session() as client:
        client.get(router.url + "/warm")  # the Task path opens a connection to reuse

    def get(extra: bytes) -> bytes:
        return b"GET /h HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"

    raw = _raw_get(
        router.url,
        [
            get(b"X-User: a\r\n"),
            get(b"X-User: a\r\n"),
            get(b"X-User: b\r\nX-Forwarded-For: 10.0.0.9\r\n"),
            get(b"X-User: a\r\n"),
        ],
    )
    assert raw.count(b"HTTP/1.1 200 OK") == 4
    assert router.took(5)[1:] == [True] * 4
    seen = [r.lower() for r in backend.requests if b"GET /h " in r]
    assert [b"x-user: a\r\n" in r for r in seen] == [True, True, False, True]
    assert b"x-user: b\r\n" in seen[2]
    assert [b"x-forwarded-for: 10.0.0.9, 127.0.0.1\r\n" in r for r in seen] == [
        False,
        False,
        True,
        False,
    ]
    assert all(b"x-forwarded-for: 127.0.0.1\r\n" in seen[i] for i in (0, 1, 3))


def test_a_head_with_bare_lf_line_ends_is_a_bad_response(scripted, router_for):
    def bare(conn: Conn) -> None:
        while conn.request() is not None:
            conn.send(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")

    router = router_for(scripted(bare))
    answer_ = requests.get(router.url + "/x", timeout=5)
    assert answer_.status_code == 502
    assert answer_.json()["error"]["code"] == "backend_error"
    assert "'b'" in answer_.json()["error"]["message"]
