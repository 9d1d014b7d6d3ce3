"""Sticky canary bucketing: about N % of users, always the same side, only moving forward."""

from __future__ import annotations

import base64
import json

from strangler.routing.canary import bucket, jwt_subject, key_value, on_canary


def fake_jwt(sub: str) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'sub': sub})}.signature-not-checked"


def test_thousand_users_at_ten_percent_then_twenty():
    users = [str(i) for i in range(1000)]
    at_10 = {u for u in users if on_canary("votes", u, 1000)}
    # Binomial(1000, 0.1): sd ~ 9.5, so 60..140 is over 4 sd either side.
    assert 60 <= len(at_10) <= 140
    again = {u for u in users if on_canary("votes", u, 1000)}
    assert again == at_10
    at_20 = {u for u in users if on_canary("votes", u, 2000)}
    assert at_10 <= at_20
    assert 140 <= len(at_20) <= 260


def test_buckets_depend_on_the_route():
    users = [str(i) for i in range(200)]
    assert [bucket("votes", u) for u in users] != [bucket("choices", u) for u in users]


def test_user_key_is_the_unverified_jwt_subject():
    headers = {"authorization": f"Bearer {fake_jwt('42')}"}
    assert jwt_subject(headers["authorization"]) == "42"
    assert key_value("user", headers) == "42"
    assert key_value("user", {"authorization": "Bearer not-a-jwt"}) is None
    assert key_value("user", {}) is None


def test_header_and_cookie_keys():
    headers = {"x-user": "alice", "cookie": "a=1; uid=bob"}
    assert key_value("header:x-user", headers) == "alice"
    assert key_value("cookie:uid", headers) == "bob"
    assert key_value("cookie:missing", headers) is None


def test_requests_without_a_key_stay_on_the_primary():
    assert on_canary("votes", None, 10_000) is False
    assert on_canary("votes", "anyone", 10_000) is True
    assert on_canary("votes", "anyone", 0) is False
