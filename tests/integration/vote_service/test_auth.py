"""The vote service verifies the monolith's RS256 tokens with the public key alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from extracted.vote_service.votes.models import Vote
from strangler.auth.tokens import issue_token
from tests.integration.servicehelpers import (
    assert_error,
    claims,
    hs256_with,
    sign,
    unsigned,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _cast(api_client, token: str | None, header: str | None = None):
    auth = header if header is not None else f"Bearer {token}"
    return api_client.post(
        "/api/votes/", {"choice": 3}, format="json", HTTP_AUTHORIZATION=auth
    )


@pytest.fixture(autouse=True)
def _choice(make_choice):
    make_choice(3, 1)


def test_settings_hold_the_public_key_and_no_private_key():
    jwt_config = settings.STRANGLER_JWT
    assert "PRIVATE_KEY_FILE" not in jwt_config
    assert jwt_config["PUBLIC_KEY_FILE"].endswith("jwt_public.pem")
    for name in dir(settings):
        if name.isupper():
            assert "PRIVATE KEY" not in str(getattr(settings, name)), name


def test_the_service_cannot_issue_tokens():
    with pytest.raises(ImproperlyConfigured, match="JWT_PRIVATE_KEY_FILE"):
        issue_token(7)


def test_token_signed_with_the_monolith_key_is_accepted(api_client):
    response = _cast(api_client, sign(claims(7)))
    assert response.status_code == 201, response.content
    assert Vote.objects.get().user_id == 7


def test_missing_token_is_401_not_authenticated(api_client):
    response = api_client.post("/api/votes/", {"choice": 3}, format="json")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not Vote.objects.exists()


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer  ", "Basic dTpw"])
def test_malformed_authorization_header_is_401(api_client, header):
    response = _cast(api_client, None, header=header)
    assert_error(response, 401, "not_authenticated")
    assert not Vote.objects.exists()


def _other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda: sign(claims(7), key=_other_key()), "Token signature is invalid."),
        (
            lambda: sign(claims(7, exp=1_000_000, iat=999_000)),
            "Token has expired.",
        ),
        (
            lambda: sign(claims(7, iss="someone-else")),
            "Token was issued by an unknown issuer.",
        ),
        (lambda: sign(claims(7, exp=None)), "Token lacks the required claim 'exp'."),
        (
            lambda: unsigned(claims(7)),
            "Token algorithm 'none' is not allowed; use RS256.",
        ),
        (
            lambda: hs256_with(
                Path(settings.STRANGLER_JWT["PUBLIC_KEY_FILE"]).read_bytes(), claims(7)
            ),
            "Token algorithm 'HS256' is not allowed; use RS256.",
        ),
        (lambda: "not.a.token", "Token is malformed."),
        (
            lambda: sign(claims("alice")),
            "Token names a user that does not exist or is inactive.",
        ),
    ],
    ids=[
        "other-key",
        "expired",
        "wrong-issuer",
        "no-exp",
        "alg-none",
        "hs256-public-key",
        "garbage",
        "non-numeric-sub",
    ],
)
def test_refused_tokens_are_401_invalid_token_and_write_nothing(
    api_client, make_token, message
):
    response = _cast(api_client, make_token())
    error = assert_error(response, 401, "invalid_token")
    assert error["message"] == message
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not Vote.objects.exists()


def test_reads_need_no_token(api_client):
    assert api_client.get("/api/votes/").status_code == 200
