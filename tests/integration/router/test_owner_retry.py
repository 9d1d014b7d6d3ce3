"""Writes answered 409 ``owned_elsewhere`` while ownership moves are sent again (``_Again``
in router/app.py): a plan's ``writes`` stage flips the services' modes and the router's
routes one after the other, and for a moment a write can reach a backend that no longer,
or not yet, owns the entity. Its guard refused the write inside its transaction, so the
router sends it again, matched anew, for up to ``owner_wait_seconds``.

Real router in a thread, scripted raw-socket backends (``scripted.py``).
"""

from __future__ import annotations

import json
import threading
import time

import requests

from router.metrics import REGISTRY
from tests.integration.router.scripted import Conn, answer

OWNED = json.dumps(
    {"error": {"code": "owned_elsewhere", "message": "vote is in reverse mode here."}}
).encode()
VOTED = json.dumps(
    {"error": {"code": "already_voted", "message": "User 1 already voted."}}
).encode()


def refusal(body: bytes = OWNED) -> bytes:
    return (
        b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def created(body: bytes) -> bytes:
    return b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class Script:
    """A backend's answers: ``refusals`` 409s to writes, then ``then`` (None: refuse
    forever); GETs get 200. Counts what it was sent."""

    def __init__(self, refusals: int | None, then: bytes = b"", body: bytes = OWNED):
        self.refusals = refusals
        self.then = then
        self.body = body
        self.writes = 0
        self.reads = 0
        self.lock = threading.Lock()

    def __call__(self, conn: Conn) -> None:
        while (request := conn.request()) is not None:
            if request.startswith(b"GET "):
                with self.lock:
                    self.reads += 1
                conn.send(answer(b"read"))
                continue
            with self.lock:
                self.writes += 1
                refuse = self.refusals is None or self.writes <= self.refusals
            conn.send(refusal(self.body) if refuse else created(self.then))


def _config(routes: dict[str, str], **urls: str) -> str:
    backends = "".join(f"  {n}: {{url: '{u}'}}\n" for n, u in urls.items())
    lines = "".join(
        f"  - {{name: votes, methods: [POST], path: /api/votes/, to: {to}}}\n"
        if name == "write"
        else f"  - {{name: reads, path: /api/**, to: {to}}}\n"
        for name, to in routes.items()
    )
    return f"backends:\n{backends}routes:\n{lines}"


def _retries(backend: str) -> float:
    labels = {"route": "votes", "backend": backend}
    return REGISTRY.get_sample_value("router_owner_retries_total", labels) or 0.0


def test_a_refused_write_reaches_the_new_owner_once_the_route_flips(
    scripted, router_thread
):
    old, new = Script(refusals=None), Script(refusals=0, then=b"cast on the new owner")
    a, b = scripted(old), scripted(new)
    routes = {"write": "a", "read": "a"}
    router = router_thread(_config(routes, a=a.url, b=b.url), poll_interval=0.05)
    before = _retries("a")

    def flip() -> None:
        time.sleep(0.4)
        router.store.commit(
            _config({"write": "b", "read": "a"}, a=a.url, b=b.url),
            action="route set",
            why="writes stage",
        )

    flipper = threading.Thread(target=flip)
    flipper.start()
    started = time.monotonic()
    response = requests.post(
        router.url + "/api/votes/", data=b'{"choice": 1}', timeout=10
    )
    elapsed = time.monotonic() - started
    flipper.join()
    assert (response.status_code, response.text) == (201, "cast on the new owner")
    assert response.headers["X-Strangler-Route"] == "votes; backend=b; version=2"
    assert new.writes == 1
    assert old.writes >= 2  # refused, sent again while the route still named it
    assert _retries("a") - before == old.writes
    assert 0.4 <= elapsed < 2.5


def test_a_write_refused_until_its_backend_takes_ownership_is_cast_there(
    scripted, router_thread
):
    """The route flipped first; the backend's own mode flips a moment later."""
    owner = Script(refusals=2, then=b"cast")
    a = scripted(owner)
    router = router_thread(_config({"write": "a", "read": "a"}, a=a.url))
    with requests.Session() as client:
        assert client.get(router.url + "/api/polls/").text == "read"
        response = client.post(router.url + "/api/votes/", data=b"{}")
    assert (response.status_code, response.text) == (201, "cast")
    assert owner.writes == 3
    # The write was taken by the callback path, which handed the refusal to the Task path.
    assert router.took(2) == [False, True]


def test_other_refusals_are_answered_as_they_are(scripted, router_thread):
    voted = Script(refusals=None, body=VOTED)
    a = scripted(voted)
    router = router_thread(_config({"write": "a", "read": "a"}, a=a.url))
    response = requests.post(router.url + "/api/votes/", data=b"{}", timeout=10)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_voted"
    assert voted.writes == 1


def test_the_refusal_reaches_the_client_when_the_wait_is_over(scripted, router_thread):
    never = Script(refusals=None)
    a = scripted(never)
    router = router_thread(
        _config({"write": "a", "read": "a"}, a=a.url), owner_wait_seconds=0.5
    )
    started = time.monotonic()
    response = requests.post(router.url + "/api/votes/", data=b"{}", timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "owned_elsewhere"
    assert response.headers["X-Strangler-Route"] == "votes; backend=a; version=1"
    assert never.writes >= 3  # 50, 100, 200 ms pauses fit in the half second
    assert 0.5 <= elapsed < 2.0


def test_a_refused_read_is_not_sent_again(scripted, router_thread):
    """Only writes are: a read refused so is not something this window produces."""
    reads = []

    def refuses_reads(conn: Conn) -> None:
        while conn.request() is not None:
            reads.append(1)
            conn.send(refusal())

    a = scripted(refuses_reads)
    router = router_thread(_config({"write": "a", "read": "a"}, a=a.url))
    response = requests.get(router.url + "/api/polls/", timeout=10)
    assert response.status_code == 409
    assert len(reads) == 1
