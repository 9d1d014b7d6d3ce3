"""Shadow records: the router's format round-trips and bad lines are named."""

from __future__ import annotations

import json

import pytest

from strangler.compare import Exchange, compare
from strangler.parity.cli import shadow_results
from strangler.parity.records import RecordError, ShadowRecord, read_records

JSON = {"Content-Type": "application/json"}


def record(body_a: bytes, body_b: bytes, **kw) -> ShadowRecord:
    return ShadowRecord(
        route="GET /api/votes/**",
        method="GET",
        path="/api/votes/7/",
        primary=Exchange(200, JSON, body_a),
        shadow=Exchange(200, JSON, body_b),
        primary_backend="monolith",
        shadow_backend="vote",
        **kw,
    )


def test_round_trip_text_and_binary_bodies(tmp_path):
    binary = record(b"\xff\x00", b'{"id": 7}')
    text = record(b'{"id": 7}', b'{"id": 7}')
    path = tmp_path / "shadow.jsonl"
    path.write_text(binary.to_json() + "\n\n" + text.to_json() + "\n")
    first, second = list(read_records(path))
    assert first.primary.body == b"\xff\x00" and first.shadow.body == b'{"id": 7}'
    assert first.to_dict()["primary"]["encoding"] == "base64"
    assert second.primary_backend == "monolith" and second.route == "GET /api/votes/**"


def test_stored_comparison_is_used_unless_rules_recompare(tmp_path):
    a, b = (
        b'{"id": 7, "at": "2026-01-01T00:00:00Z"}',
        b'{"id": 7, "at": "2026-01-02T00:00:00Z"}',
    )
    stored = compare(
        Exchange(200, JSON, a),
        Exchange(200, JSON, b),
        method="GET",
        path="/api/votes/7/",
    )
    path = tmp_path / "shadow.jsonl"
    path.write_text(record(a, b, comparison=stored).to_json() + "\n")
    from strangler.compare import load_rules

    [kept] = shadow_results(str(path), load_rules(None), recompare=False)
    assert not kept.comparison.matched
    rules = load_rules({"defaults": {"match": {"/at": "iso8601"}}})
    [redone] = shadow_results(str(path), rules, recompare=True)
    assert redone.comparison.matched and redone.route == "GET /api/votes/**"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("nope", r"shadow.jsonl:1: not valid JSON"),
        (
            '{"method": "GET", "path": "/", "primary": {"status": 200}}',
            r"missing key 'shadow'",
        ),
        (
            '{"method": "GET", "path": "/", "primary": {}, "shadow": {"status": 200}}',
            r"key 'primary': must be an object with an integer 'status'",
        ),
        (
            '{"version": 9, "method": "GET", "path": "/", "primary": {"status": 200}, "shadow": {"status": 200}}',
            r"key 'version': 9 is not supported",
        ),
    ],
)
def test_bad_records_are_named(tmp_path, line, message):
    path = tmp_path / "shadow.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(RecordError, match=message):
        list(read_records(path))


def test_router_record_shape_is_read(tmp_path):
    line = {
        "when": "2026-11-28T00:00:00.000+00:00", "route": "votes", "backend": "vote",
        "method": "POST", "path": "/api/votes/", "dry_run": True, "matched": False,
        "primary": {"status": 201, "body": '{"id": 1}'},
        "shadow": {"status": 400, "body": '{"error": {}}'},
        "diff": {"endpoint": "POST /api/votes/", "method": "POST", "path": "/api/votes/",
                 "matched": False, "noise": [],
                 "differences": [{"path": "status", "kind": "status", "primary": 201, "candidate": 400}]},
    }  # fmt: skip
    path = tmp_path / "shadow.jsonl"
    path.write_text(json.dumps(line) + "\n")
    [record] = read_records(path)
    assert record.shadow_backend == "vote" and record.at.startswith("2026-11-28")
    assert record.comparison is not None and not record.comparison.matched
    assert record.shadow.status == 400


def test_request_headers_are_kept_with_credentials_redacted(tmp_path):
    shadowed = record(
        b"{}",
        b"{}",
        request_headers={
            "authorization": "Bearer secret",
            "Cookie": "session=secret",
            "x-strangler-router-token": "secret",
            "accept": "application/json",
        },
        dry_run=True,
    )
    line = shadowed.to_json()
    assert "secret" not in line
    path = tmp_path / "shadow.jsonl"
    path.write_text(line + "\n")
    [read] = read_records(path)
    assert read.dry_run is True
    assert read.request_headers == {
        "authorization": "[redacted]",
        "Cookie": "[redacted]",
        "accept": "application/json",
    }


def test_a_redacted_authorization_is_recorded_as_the_test_identity(tmp_path):
    from strangler.parity.record import from_shadow_records

    path = tmp_path / "shadow.jsonl"
    authed = record(b"{}", b"{}", request_headers={"authorization": "Bearer x"})
    anonymous = record(b"{}", b"{}", request_headers={"accept": "application/json"})
    path.write_text(authed.to_json() + "\n" + anonymous.to_json() + "\n")
    first, second = from_shadow_records(path)
    assert first.headers == {"authorization": "strangler-identity:default"}
    assert second.headers == {"accept": "application/json"}
