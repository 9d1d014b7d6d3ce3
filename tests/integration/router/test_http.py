"""The router's own HTTP/1.1 server against real clients: chunked and 100-continue uploads,
HEAD, HTTP/1.0 framing, pipelining, malformed requests, a chunked body over the limit and
several workers sharing the port."""

from __future__ import annotations

import json
import socket

from tests.integration.router import procs
from tests.integration.router.conftest import config_text


def _raw(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def _raw_answer(url: str, data: bytes, length: int) -> tuple[bytes, bytes]:
    """The head and the first ``length`` bytes after it, or all up to the close."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while (at := out.find(b"\r\n\r\n")) < 0 or len(out) - at - 4 < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    return head, body[:length]


def _router(two_backends, store, start_router, settings: str = "", **env: str):
    alpha, _ = two_backends
    store.commit(
        config_text(
            {"alpha": alpha.url}, "  - {name: all, path: /**, to: alpha}\n", settings
        ),
        action="t",
        why="t",
    )
    return start_router(**env)


def test_chunked_and_expect_continue_uploads_arrive_whole(
    two_backends, store, start_router
):
    router = _router(two_backends, store, start_router)
    chunked = procs.http.post(
        router.url + "/up", data=iter([b"a" * 70_000, b"b" * 30_000])
    )
    assert chunked.json()["body_len"] == 100_000
    assert chunked.json()["headers"]["transfer-encoding"] == "chunked"
    expect = procs.http.post(
        router.url + "/up", data=b"c" * 5000, headers={"Expect": "100-continue"}
    )
    assert expect.json()["body_len"] == 5000
    assert "expect" not in expect.json()["headers"]


def test_chunked_body_over_the_limit_is_413(two_backends, store, start_router):
    router = _router(two_backends, store, start_router, "  max_body_bytes: 100000")
    response = procs.http.post(router.url + "/up", data=iter([b"x" * 80_000] * 3))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_head_http10_and_pipelined_requests(two_backends, store, start_router):
    router = _router(two_backends, store, start_router)
    head = procs.http.head(router.url + "/x")
    assert head.status_code == 200 and head.content == b""
    old = _raw(router.url, b"GET /big?n=100000 HTTP/1.0\r\n\r\n")
    head_part, _, body = old.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head_part.lower()
    assert len(body) == 100_000
    # Kept alive by its Connection header, still HTTP/1.0: no chunked framing for it
    # (a length, or the end of the body at the close).
    head_part, body = _raw_answer(
        router.url,
        b"GET /big?n=100000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        100_000,
    )
    assert b"transfer-encoding" not in head_part.lower()
    assert body == b"x" * 100_000
    piped = _raw(
        router.url,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert piped.count(b"HTTP/1.1 200 OK") == 3
    assert (
        piped.index(b'"path": "/a"')
        < piped.index(b'"path": "/b"')
        < piped.index(b'"path": "/c"')
    )


def test_malformed_request_gets_400_json(two_backends, store, start_router):
    router = _router(two_backends, store, start_router)
    answer = _raw(router.url, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"code": "bad_request"' in answer


def test_several_workers_share_the_port(two_backends, store, start_router):
    router = _router(two_backends, store, start_router, ROUTER_WORKERS="2")
    close = {"Connection": "close"}
    responses = [
        procs.http.get(router.url + f"/x/{i}", headers=close) for i in range(40)
    ]
    assert all(r.status_code == 200 for r in responses)
    # Request ids start with a per-process prefix: new connections reach both workers.
    assert len({r.headers["X-Request-ID"][:16] for r in responses}) == 2


def test_trailing_whitespace_of_a_header_value_is_not_part_of_it(
    two_backends, store, start_router
):
    """RFC 9110 5.5: a field value has no leading or trailing whitespace. The parser
    drops the leading; the trailing once made ``Content-Length: 5 `` a 413, left
    ``Expect: 100-continue<TAB>`` unanswered and was forwarded as it came."""
    router = _router(two_backends, store, start_router)
    answer = _raw(
        router.url,
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5  \r\n"
        b"X-Note: kept \t\r\nConnection: close\r\n\r\nhello",
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    echoed = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert echoed["body_len"] == 5
    assert echoed["headers"]["x-note"] == "kept"
    host, port = router.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Expect: 100-continue\t\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"abc")
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    assert out.startswith(b"HTTP/1.1 200 ")
    assert json.loads(out.partition(b"\r\n\r\n")[2])["body_len"] == 3
