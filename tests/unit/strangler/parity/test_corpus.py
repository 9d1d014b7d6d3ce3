"""The corpus format: parsing with errors that name the line and key, scrubbing, writing."""

from __future__ import annotations

import json

import pytest

from strangler.parity.corpus import (
    CorpusError,
    CorpusRequest,
    parse_line,
    read_corpus,
    scrub_request,
    write_corpus,
)


def test_round_trip_through_a_file(tmp_path):
    requests = [
        CorpusRequest("GET", "/api/votes/", query={"page": "2", "user": ["1", "2"]}),
        CorpusRequest(
            "POST",
            "/api/votes/",
            headers={"Authorization": "strangler-identity:default"},
            body={"choice": 3},
            endpoint="POST /api/votes/",
        ),
        CorpusRequest("POST", "/api/votes/", body_raw='{"broken": '),
    ]
    path = tmp_path / "corpus.jsonl"
    assert write_corpus(path, requests) == 3
    again = read_corpus(path)
    assert again[0].target == "/api/votes/?page=2&user=1&user=2"
    assert again[0].endpoint == "GET /api/votes/"
    assert (
        again[1].identity == "default" and again[1].encoded_body() == b'{"choice": 3}'
    )
    assert again[2].encoded_body() == b'{"broken": '
    assert not again[1].is_safe and again[0].is_safe


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"corpus.jsonl:2: not valid JSON"),
        ("[1]", r"corpus.jsonl:2: each line must be a JSON object"),
        ('{"method": "FETCH", "path": "/"}', r"corpus.jsonl:2: key 'method': 'FETCH'"),
        (
            '{"method": "GET", "path": "api/"}',
            r"key 'path': 'api/' must start with '/'",
        ),
        ('{"method": "GET", "path": "/a?b=1"}', r"put parameters under 'query'"),
        ('{"method": "GET", "path": "/", "query": {"a": 1}}', r"key 'query'"),
        ('{"method": "GET", "path": "/", "headers": {"a": 1}}', r"key 'headers'"),
        ('{"method": "GET", "path": "/", "body": 1, "body_raw": "x"}', r"not both"),
        ('{"method": "GET", "path": "/", "url": "/"}', r"unknown key 'url'"),
    ],
)
def test_bad_line_names_file_line_and_key(tmp_path, line, message):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"method": "GET", "path": "/healthz"}\n' + line + "\n")
    with pytest.raises(CorpusError, match=message):
        read_corpus(path)


def test_empty_and_missing_corpus(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(CorpusError, match="the corpus is empty"):
        read_corpus(empty)
    with pytest.raises(CorpusError, match="cannot read corpus"):
        read_corpus(tmp_path / "nope.jsonl")


def test_scrub_replaces_credentials_and_named_fields():
    request = CorpusRequest(
        "POST",
        "/api/auth/token/",
        query={"token": "abc", "page": "1"},
        headers={"Authorization": "Bearer real.jwt", "Cookie": "s=1", "Accept": "*/*"},
        body={"username": "ann", "password": "hunter2", "nested": [{"password": "x"}]},
    )
    clean = scrub_request(request, identity="alice", fields=["password", "token"])
    assert clean.headers == {
        "Authorization": "strangler-identity:alice",
        "Accept": "*/*",
    }
    assert clean.query == {"token": "[scrubbed]", "page": "1"}
    assert clean.body == {
        "username": "ann",
        "password": "[scrubbed]",
        "nested": [{"password": "[scrubbed]"}],
    }
    assert "hunter2" not in json.dumps(clean.to_dict())


def test_parse_line_uppercases_method():
    assert parse_line('{"method": "get", "path": "/"}').method == "GET"
