"""Corpus generation from a schema: ``include`` keeps only the matching operations."""

from __future__ import annotations

import pytest

from strangler.parity.generate import GenerateError, Generator

# Nothing listens on the discard port: the generator falls back to placeholder ids.
NO_DATA = "http://127.0.0.1:9"
SCHEMA = {
    "openapi": "3.0.3",
    "paths": {
        "/api/votes/": {"get": {}, "post": {}},
        "/api/votes/{id}/": {
            "get": {"parameters": [{"name": "id", "in": "path"}]},
            "delete": {"parameters": [{"name": "id", "in": "path"}]},
        },
        "/api/choices/": {"get": {}},
        "/api/questions/{id}/": {"get": {"parameters": [{"name": "id", "in": "path"}]}},
    },
}


def endpoints(**options) -> set[str]:
    corpus = Generator(SCHEMA, NO_DATA, timeout=0.5, **options).generate()
    return {r.endpoint for r in corpus}


def test_without_include_every_operation_is_generated():
    assert endpoints() == {
        "GET /api/votes/",
        "POST /api/votes/",
        "GET /api/votes/{id}/",
        "DELETE /api/votes/{id}/",
        "GET /api/choices/",
        "GET /api/questions/{id}/",
    }


def test_include_keeps_only_matching_operations():
    assert endpoints(include=["/api/votes/**"]) == {
        "GET /api/votes/",
        "POST /api/votes/",
        "GET /api/votes/{id}/",
        "DELETE /api/votes/{id}/",
    }
    assert endpoints(include=["GET /api/votes/{id}/", "/api/choices/"]) == {
        "GET /api/votes/{id}/",
        "GET /api/choices/",
    }


def test_include_matching_nothing_is_an_error_naming_the_pattern():
    with pytest.raises(
        GenerateError, match="--include /api/nothing/\\*\\*: no operation"
    ):
        endpoints(include=["/api/nothing/**"])


def test_malformed_include_is_an_error_with_an_example():
    with pytest.raises(
        GenerateError, match=r"must start with '/'.*e\.g\. '/api/votes/\*\*'"
    ):
        endpoints(include=["api/votes"])
