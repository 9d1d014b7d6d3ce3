"""Tokens: issue, verify through the JWKS, and every refused token writes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from jwt.algorithms import RSAAlgorithm

from strangler.auth.keys import key_id, load_private_key
from tests.integration.monolith.apihelpers import assert_error, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

PASSWORD = "correct-horse-battery"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def claims_for(user_id: int | str, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iss": settings.STRANGLER_JWT["ISSUER"],
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


def signed_with_our_key(claims: dict) -> str:
    key = load_private_key(settings.STRANGLER_JWT["PRIVATE_KEY_FILE"])
    return jwt.encode(
        claims, key, algorithm="RS256", headers={"kid": key_id(key.public_key())}
    )


def hs256_with_public_key(claims: dict) -> str:
    """The classic key-confusion forgery, by hand: PyJWT refuses to build it."""
    secret = Path(settings.STRANGLER_JWT["PUBLIC_KEY_FILE"]).read_bytes()
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(claims)}"
    digest = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(digest)}"


def alg_none(claims: dict) -> str:
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."


def signed_with_another_key(claims: dict) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ours = load_private_key(settings.STRANGLER_JWT["PRIVATE_KEY_FILE"])
    # Claims our kid, so only the signature check can refuse it.
    return jwt.encode(
        claims, stranger, algorithm="RS256", headers={"kid": key_id(ours.public_key())}
    )


def post_question(client, token: str):
    return client.post(
        "/api/questions/",
        {"question_text": "Written?"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


@pytest.mark.parametrize(
    ("forge", "overrides", "why"),
    [
        (signed_with_another_key, {}, "signature"),
        (alg_none, {}, "algorithm"),
        (hs256_with_public_key, {}, "algorithm"),
        (signed_with_our_key, {"exp": int(time.time()) - 3600}, "expired"),
        (signed_with_our_key, {"iss": "someone-else"}, "issuer"),
        (signed_with_our_key, {"sub": "not-a-number"}, "user"),
    ],
    ids=["other-rsa-key", "alg-none", "hs256-public-key", "expired", "issuer", "sub"],
)
def test_refused_token_returns_401_invalid_token_and_writes_nothing(
    api_client, user, forge, overrides, why
):
    before = row_counts()
    response = post_question(api_client, forge(claims_for(user.pk, **overrides)))
    error = assert_error(response, 401, "invalid_token")
    assert why in error["message"].lower()
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert row_counts() == before


def test_token_missing_exp_is_refused(api_client, user):
    claims = claims_for(user.pk)
    del claims["exp"]
    error = assert_error(
        post_question(api_client, signed_with_our_key(claims)), 401, "invalid_token"
    )
    assert "exp" in error["message"]


def test_token_for_a_user_that_does_not_exist_is_refused(api_client):
    response = post_question(api_client, signed_with_our_key(claims_for(987654)))
    assert_error(response, 401, "invalid_token")
    assert row_counts()["questions"] == 0


def test_token_for_an_inactive_user_is_refused(api_client, user):
    user.is_active = False
    user.save()
    response = post_question(api_client, signed_with_our_key(claims_for(user.pk)))
    assert_error(response, 401, "invalid_token")
    assert row_counts()["questions"] == 0


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Basic dXNlcjpwdw=="])
def test_malformed_authorization_header_returns_401(api_client, header):
    response = api_client.post(
        "/api/questions/", {"question_text": "x"}, HTTP_AUTHORIZATION=header
    )
    assert_error(response, 401, "not_authenticated")
    assert row_counts()["questions"] == 0


def test_garbage_bearer_token_returns_401_invalid_token(api_client):
    response = post_question(api_client, "not.a.jwt")
    assert_error(response, 401, "invalid_token")


def test_token_endpoint_issues_a_token_the_jwks_verifies(api_client, user):
    response = api_client.post(
        "/api/auth/token/",
        {"username": user.username, "password": PASSWORD},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.STRANGLER_JWT["TTL_SECONDS"]

    jwks = api_client.get("/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(body["access"])
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    claims = jwt.decode(
        body["access"],
        RSAAlgorithm.from_jwk(jwk),
        algorithms=["RS256"],
        issuer=settings.STRANGLER_JWT["ISSUER"],
    )
    assert claims["sub"] == str(user.pk)

    created = post_question(api_client, body["access"])
    assert created.status_code == 201
    assert created.json()["created_by"] == user.pk


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "USER", "password": "wrong"},
        {"username": "nobody-here", "password": PASSWORD},
    ],
)
def test_token_endpoint_with_bad_credentials_issues_no_token(
    api_client, user, credentials
):
    if credentials["username"] == "USER":
        credentials = {**credentials, "username": user.username}
    response = api_client.post("/api/auth/token/", credentials, format="json")
    body = response.json()
    assert "access" not in body
    assert body["error"]["code"] == "bad_credentials"
    assert response.status_code in (401, 403)


def test_token_endpoint_with_wrong_password_returns_401(api_client, user):
    response = api_client.post(
        "/api/auth/token/", {"username": user.username, "password": "wrong"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_credentials"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("missing", ["username", "password"])
def test_token_endpoint_without_a_field_returns_400_naming_it(
    api_client, user, missing
):
    body = {"username": user.username, "password": PASSWORD}
    del body[missing]
    assert_error(
        api_client.post("/api/auth/token/", body, format="json"),
        400,
        "invalid",
        missing,
    )
