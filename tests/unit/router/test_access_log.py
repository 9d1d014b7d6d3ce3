"""The router's access log: one JSON line per request, formatted by hand."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from router.logs import AccessLog, route_and_backend

PATHS = [
    "/api/questions/1/",
    "/a b/c",
    '/say"hi"',
    "/back\\slash",
    "/tab\there",
    "/del\x7f",
    "/caf\u00e9",
    "/\u2603/snow",
    "/nul\x00",
    "",
]


@pytest.mark.parametrize("path", PATHS)
def test_each_line_is_json_with_the_request_as_given(path):
    async def scenario() -> str:
        stream = io.StringIO()
        log = AccessLog(stream)
        log.add("rid-1", "GET", path, 200, route_and_backend("r", "b"), 7, 0.00125)
        log.add("rid-2", "POST", path, 502, route_and_backend("r", "b"), None, 12.0345)
        log.flush()
        return stream.getvalue()

    first, second = (json.loads(line) for line in asyncio.run(scenario()).splitlines())
    assert first["path"] == path and second["path"] == path
    assert (first["version"], second["version"]) == (7, None)
    assert (first["status"], first["route"], first["backend"]) == (200, "r", "b")
    assert (first["ms"], second["request_id"], second["ms"]) == (1.25, "rid-2", 12034.5)
