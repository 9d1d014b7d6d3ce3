"""Issuing and verifying RS256 tokens. Verification accepts RS256 only, whatever the header says."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from strangler.auth.keys import key_id, load_private_key, load_public_key

ALGORITHM = "RS256"


class TokenError(Exception):
    """The token was refused; the message says why, in words fit for an API client."""


def jwt_settings() -> dict[str, Any]:
    config = getattr(settings, "STRANGLER_JWT", None)
    if not config:
        raise ImproperlyConfigured(
            "STRANGLER_JWT: the settings define no JWT configuration"
        )
    return config


def issue_token(
    subject: str | int, *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A signed token for ``subject`` with the configured issuer and lifetime."""
    config = jwt_settings()
    private_file = config.get("PRIVATE_KEY_FILE")
    if not private_file:
        raise ImproperlyConfigured(
            "JWT_PRIVATE_KEY_FILE: this process cannot issue tokens"
        )
    private_key = load_private_key(private_file)
    now = int(time.time())
    ttl = int(config.get("TTL_SECONDS", 3600))
    claims = {
        "sub": str(subject),
        "iss": config["ISSUER"],
        "iat": now,
        "exp": now + ttl,
    }
    claims.update(extra or {})
    token = jwt.encode(
        claims,
        private_key,
        algorithm=ALGORITHM,
        headers={"kid": key_id(private_key.public_key())},
    )
    return {"access": token, "token_type": "Bearer", "expires_in": ttl}


@dataclass
class _JWKSCache:
    keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)
    fetched_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


_jwks_cache = _JWKSCache()


def _fetch_jwks(url: str, timeout: float) -> dict[str, rsa.RSAPublicKey]:
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    keys = {}
    for jwk in response.json().get("keys", []):
        if jwk.get("kty") == "RSA":
            key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
            keys[jwk.get("kid") or key_id(key)] = key
    return keys


def _jwks_key(url: str, kid: str | None, config: dict[str, Any]) -> rsa.RSAPublicKey:
    ttl = float(config.get("JWKS_CACHE_SECONDS", 300))
    with _jwks_cache.lock:
        stale = time.monotonic() - _jwks_cache.fetched_at > ttl
        unknown = kid is not None and kid not in _jwks_cache.keys
        # Refetch at most every 10 s for unknown kids, so forged kids cannot hammer the issuer.
        if stale or (unknown and time.monotonic() - _jwks_cache.fetched_at > 10):
            try:
                _jwks_cache.keys = _fetch_jwks(
                    url, float(config.get("JWKS_TIMEOUT", 2.0))
                )
                _jwks_cache.fetched_at = time.monotonic()
            except (requests.RequestException, ValueError) as exc:
                if not _jwks_cache.keys:
                    raise TokenError(
                        f"Cannot fetch signing keys from {url}: {exc}"
                    ) from None
        keys = _jwks_cache.keys
    if kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    if kid not in keys:
        raise TokenError("Token was signed by an unknown key.")
    return keys[kid]


def verification_key(kid: str | None) -> rsa.RSAPublicKey:
    config = jwt_settings()
    if config.get("PUBLIC_KEY_FILE"):
        return load_public_key(config["PUBLIC_KEY_FILE"])
    if config.get("JWKS_URL"):
        return _jwks_key(config["JWKS_URL"], kid, config)
    raise ImproperlyConfigured(
        "JWT_PUBLIC_KEY_FILE: set it, or JWT_JWKS_URL, so tokens can be verified"
    )


def verify_token(token: str) -> dict[str, Any]:
    """The token's claims if it is a valid RS256 token from our issuer, else ``TokenError``."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise TokenError("Token is malformed.") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError(
            f"Token algorithm {header.get('alg')!r} is not allowed; use RS256."
        )
    config = jwt_settings()
    try:
        return jwt.decode(
            token,
            verification_key(header.get("kid")),
            algorithms=[ALGORITHM],
            issuer=config["ISSUER"],
            leeway=int(config.get("LEEWAY_SECONDS", 30)),
            options={"require": ["exp", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("Token has expired.") from None
    except jwt.InvalidSignatureError:
        raise TokenError("Token signature is invalid.") from None
    except jwt.InvalidIssuerError:
        raise TokenError("Token was issued by an unknown issuer.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"Token lacks the required claim {exc.claim!r}.") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"Token is invalid: {exc}.") from None
