"""Loading RSA keys from files named by the environment, and the dev key pair under var/."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured


def generate_dev_key_pair(directory: Path) -> tuple[Path, Path]:
    """Create ``jwt_private.pem``/``jwt_public.pem`` in ``directory`` unless they exist."""
    private_path = directory / "jwt_private.pem"
    public_path = directory / "jwt_public.pem"
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tmp = private_path.with_suffix(".tmp")
    tmp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    tmp.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    tmp.replace(private_path)
    return private_path, public_path


def _read(path: str, variable: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{variable}: cannot read {path!r} ({exc.strerror})"
        ) from None


@lru_cache(maxsize=8)
def load_private_key(
    path: str, variable: str = "JWT_PRIVATE_KEY_FILE"
) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, variable), password=None)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{variable}: {path!r} is not a PEM private key ({exc})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ImproperlyConfigured(
            f"{variable}: {path!r} is not an RSA key (RS256 needs RSA)"
        )
    return key


@lru_cache(maxsize=8)
def load_public_key(
    path: str, variable: str = "JWT_PUBLIC_KEY_FILE"
) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(_read(path, variable))
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{variable}: {path!r} is not a PEM public key ({exc})"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ImproperlyConfigured(
            f"{variable}: {path!r} is not an RSA key (RS256 needs RSA)"
        )
    return key


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint, so a rotated key gets a new ``kid`` by itself."""
    numbers = public_key.public_numbers()
    canonical = json.dumps(
        {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    numbers = public_key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": key_id(public_key),
        "n": _b64(numbers.n),
        "e": _b64(numbers.e),
    }
