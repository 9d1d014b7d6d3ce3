"""Sticky canary bucketing: a stable hash of (route, key) into 10,000 buckets.

A user whose bucket is below ``percent * 100`` goes to the canary. The bucket never changes
for a given route and key, so raising the percent only moves users onto the canary and
lowering it only moves them back. The ``user`` key is the JWT ``sub``, read from the payload
*without* verifying the signature: it only picks a bucket, and the backend still verifies the
token before trusting it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

BUCKETS = 10_000


def bucket(route_name: str, key: str) -> int:
    digest = hashlib.sha256(f"{route_name}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def jwt_subject(authorization: str | None) -> str | None:
    """The ``sub`` claim of a ``Bearer`` JWT, unverified; None when there is none."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    parts = authorization[7:].strip().split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return str(sub) if sub not in (None, "") else None


def cookie_value(cookie_header: str | None, name: str) -> str | None:
    if not cookie_header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None and morsel.value else None


def key_value(key: str, headers: Mapping[str, str]) -> str | None:
    """The request's canary key; ``headers`` has lower-case names."""
    if key == "user":
        return jwt_subject(headers.get("authorization"))
    kind, _, name = key.partition(":")
    if kind == "header":
        return headers.get(name.lower()) or None
    if kind == "cookie":
        return cookie_value(headers.get("cookie"), name)
    return None


def on_canary(route_name: str, key: str | None, threshold: int) -> bool:
    """Requests without a key stay on the primary, so anonymous traffic never flaps."""
    if key is None or threshold <= 0:
        return False
    return bucket(route_name, key) < threshold
