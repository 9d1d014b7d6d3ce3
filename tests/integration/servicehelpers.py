"""Helpers for the extracted services' tests: tokens signed outside the service, and the
error-shape assertion. Nothing here imports a Django app, so any suite can use it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from strangler import conf
from strangler.auth.keys import generate_dev_key_pair, key_id, load_private_key

ISSUER = "strangler-monolith"


def monolith_private_key() -> rsa.RSAPrivateKey:
    """The monolith's dev signing key, which the service under test never loads."""
    private_path, _ = generate_dev_key_pair(conf.var_dir() / "keys")
    return load_private_key(str(private_path))


def claims(sub: str | int = 7, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"sub": str(sub), "iss": ISSUER, "iat": now, "exp": now + 300}
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def sign(
    payload: dict[str, Any], key: rsa.RSAPrivateKey | None = None, **headers: Any
) -> str:
    key = key or monolith_private_key()
    return jwt.encode(
        payload,
        key,
        algorithm="RS256",
        headers={"kid": key_id(key.public_key()), **headers},
    )


def token_for(user_id: int) -> str:
    return sign(claims(user_id))


def bearer(user_id: int) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token_for(user_id)}"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256_with(secret: bytes, payload: dict[str, Any]) -> str:
    """An HS256 token keyed with ``secret``: the key-confusion attack on RS256 verifiers."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def unsigned(payload: dict[str, Any]) -> str:
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{_b64(json.dumps(payload).encode())}."


def assert_error(
    response: Any, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """The response is ``status`` with the stable error body; ``field`` is named if given."""
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    if field is not None:
        assert field in error["fields"], error
        assert error["fields"][field], error
    return error
