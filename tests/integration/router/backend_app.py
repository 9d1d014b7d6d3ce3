"""A tiny real backend for router tests: echoes what it received as JSON.

``/fail`` answers 500, ``/slow?s=2`` sleeps, ``/big?n=N`` sends N bytes in chunks,
``/dry`` echoes the dry-run headers. ``BACKEND_NAME`` names it in every answer.
``/handshake?token=T`` is remembered by a backend without ``PEER_URL``; one with
``PEER_URL`` asks that peer's ``/seen?token=T`` (for up to 0.8 s) before it answers, and
says in ``peer_saw_it_first`` whether the peer had the request already.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.request
from urllib.parse import parse_qs

NAME = os.environ.get("BACKEND_NAME", "backend")
PEER = os.environ.get("PEER_URL")
SEEN: set[str] = set()


def _peer_has(token: str) -> bool:
    with urllib.request.urlopen(f"{PEER}/seen?token={token}", timeout=1) as answer:  # noqa: S310 - test peer on 127.0.0.1
        return json.loads(answer.read())["seen"]


async def _wait_for_peer(token: str) -> bool:
    for _ in range(40):
        if await asyncio.to_thread(_peer_has, token):
            return True
        await asyncio.sleep(0.02)
    return False


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    query = parse_qs(scope["query_string"].decode())
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(float(query.get("s", ["2"])[0]))
    if path == "/big":
        size = int(query.get("n", ["1000000"])[0])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            part = chunk[: min(65536, size - sent)]
            sent += len(part)
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    extra: dict = {}
    if path == "/seen":
        extra["seen"] = query.get("token", [""])[0] in SEEN
    if path == "/handshake":
        token = query.get("token", [""])[0]
        if PEER:
            extra["peer_saw_it_first"] = await _wait_for_peer(token)
        else:
            SEEN.add(token)
    status = 500 if path == "/fail" else 200
    payload = {
        **extra,
        "backend": NAME,
        "method": scope["method"],
        "path": path,
        "query": scope["query_string"].decode(),
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        "body_len": len(body),
        "body_sha": hashlib.sha256(body).hexdigest(),
    }
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"keep-alive"),
                (b"x-backend", NAME.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
