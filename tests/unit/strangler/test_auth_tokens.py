"""strangler.auth: RS256 only, verified with the public key alone (file or JWKS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from strangler.auth import tokens
from strangler.auth.keys import (
    generate_dev_key_pair,
    key_id,
    load_public_key,
    public_jwk,
)


@pytest.fixture
def keypair(tmp_path):
    private, public = generate_dev_key_pair(tmp_path)
    return str(private), str(public)


@pytest.fixture
def jwt_settings(settings, keypair):
    private, public = keypair
    settings.STRANGLER_JWT = {
        "ISSUER": "test-issuer",
        "PRIVATE_KEY_FILE": private,
        "PUBLIC_KEY_FILE": public,
        "TTL_SECONDS": 60,
    }
    return settings.STRANGLER_JWT


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_issued_token_verifies_and_names_the_subject(jwt_settings):
    token = tokens.issue_token(42)["access"]
    claims = tokens.verify_token(token)
    assert claims["sub"] == "42"
    assert claims["iss"] == "test-issuer"
    assert claims["exp"] - claims["iat"] == 60


def test_expired_token_is_refused(jwt_settings):
    jwt_settings["TTL_SECONDS"] = -120
    token = tokens.issue_token(1)["access"]
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify_token(token)


def test_token_from_another_issuer_is_refused(jwt_settings):
    token = tokens.issue_token(1)["access"]
    jwt_settings["ISSUER"] = "someone-else"
    with pytest.raises(tokens.TokenError, match="unknown issuer"):
        tokens.verify_token(token)


def test_token_signed_with_another_key_is_refused(jwt_settings):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"sub": "1", "iss": "test-issuer", "exp": int(time.time()) + 60}, other, "RS256"
    )
    with pytest.raises(tokens.TokenError, match="signature is invalid"):
        tokens.verify_token(forged)


def test_alg_none_is_refused(jwt_settings):
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": "1", "iss": "test-issuer", "exp": 2**31}).encode())
    with pytest.raises(tokens.TokenError, match="'none' is not allowed"):
        tokens.verify_token(f"{header}.{payload}.")


def test_hs256_signed_with_the_public_key_is_refused(jwt_settings, keypair):
    public_pem = open(keypair[1], "rb").read()  # noqa: SIM115 - tiny test read
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": "1", "iss": "test-issuer", "exp": 2**31}).encode())
    signature = hmac.new(
        public_pem, f"{header}.{payload}".encode(), hashlib.sha256
    ).digest()
    with pytest.raises(tokens.TokenError, match="'HS256' is not allowed"):
        tokens.verify_token(f"{header}.{payload}.{b64(signature)}")


def test_garbage_is_reported_as_malformed(jwt_settings):
    with pytest.raises(tokens.TokenError, match="malformed"):
        tokens.verify_token("not-a-token")


def test_missing_subject_is_refused(jwt_settings, keypair):
    private = serialization.load_pem_private_key(open(keypair[0], "rb").read(), None)  # noqa: SIM115
    token = jwt.encode(
        {"iss": "test-issuer", "exp": int(time.time()) + 60}, private, "RS256"
    )
    with pytest.raises(tokens.TokenError, match="'sub'"):
        tokens.verify_token(token)


def test_verifier_needs_no_private_key(jwt_settings):
    token = tokens.issue_token(7)["access"]
    del jwt_settings["PRIVATE_KEY_FILE"]
    assert tokens.verify_token(token)["sub"] == "7"


class _JWKSHandler(BaseHTTPRequestHandler):
    body = b""
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def jwks_server(keypair):
    _JWKSHandler.body = json.dumps(
        {"keys": [public_jwk(load_public_key(keypair[1]))]}
    ).encode()
    _JWKSHandler.hits = 0
    server = HTTPServer(("127.0.0.1", 0), _JWKSHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tokens._jwks_cache.keys = {}
    tokens._jwks_cache.fetched_at = 0.0
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()


def test_jwks_verification_fetches_once_and_caches(jwt_settings, jwks_server):
    token = tokens.issue_token(5)["access"]
    verifier = {"ISSUER": "test-issuer", "JWKS_URL": jwks_server}
    jwt_settings.clear()
    jwt_settings.update(verifier)
    assert tokens.verify_token(token)["sub"] == "5"
    assert tokens.verify_token(token)["sub"] == "5"
    assert _JWKSHandler.hits == 1


def test_jwks_unknown_kid_is_refused(jwt_settings, jwks_server):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"sub": "1", "iss": "test-issuer", "exp": int(time.time()) + 60},
        other,
        "RS256",
        headers={"kid": key_id(other.public_key())},
    )
    jwt_settings.clear()
    jwt_settings.update({"ISSUER": "test-issuer", "JWKS_URL": jwks_server})
    with pytest.raises(tokens.TokenError, match="unknown key"):
        tokens.verify_token(forged)


def test_unreachable_jwks_is_a_clear_error(jwt_settings):
    tokens._jwks_cache.keys = {}
    tokens._jwks_cache.fetched_at = 0.0
    token = tokens.issue_token(1)["access"]
    jwt_settings.clear()
    jwt_settings.update(
        {"ISSUER": "test-issuer", "JWKS_URL": "http://127.0.0.1:9/jwks.json"}
    )
    with pytest.raises(tokens.TokenError, match="Cannot fetch signing keys"):
        tokens.verify_token(token)
