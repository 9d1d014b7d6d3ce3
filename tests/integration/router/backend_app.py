"""A tiny real backend for router tests: echoes what it received as JSON.

``/fail`` answers 500, ``/slow?s=2`` sleeps, ``/big?n=N`` sends N bytes in chunks,
``/dry`` echoes the dry-run headers. ``BACKEND_NAME`` names it in every answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from urllib.parse import parse_qs

NAME = os.environ.get("BACKEND_NAME", "backend")


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
    status = 500 if path == "/fail" else 200
    payload = {
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
