"""Test identities: a token per identity from the token endpoint, injected at replay."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import requests

from strangler.parity.corpus import DEFAULT_IDENTITY


class IdentityError(ValueError):
    """An identity that is not configured or whose token cannot be obtained."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def parse_identity(text: str) -> tuple[str, Credentials]:
    """``alice=alice:secret`` → (``alice``, Credentials); ``user:pass`` names ``default``."""
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = DEFAULT_IDENTITY, text
    username, colon, password = rest.partition(":")
    if not colon or not name or not username:
        raise IdentityError(
            f"--identity {text!r}: expected NAME=USERNAME:PASSWORD (or USERNAME:PASSWORD "
            "for the default identity)"
        )
    return name, Credentials(username, password)


def identities_from(
    specs: Iterable[str], *, username: str | None, password: str | None
) -> dict[str, Credentials]:
    """Identities from --identity options, plus --username/--password or the
    STRANGLER_PARITY_USERNAME / STRANGLER_PARITY_PASSWORD environment for ``default``."""
    found = dict(parse_identity(spec) for spec in specs)
    username = username or os.environ.get("STRANGLER_PARITY_USERNAME")
    password = password or os.environ.get("STRANGLER_PARITY_PASSWORD")
    if username and DEFAULT_IDENTITY not in found:
        if password is None:
            raise IdentityError(
                "a username was given without a password (use --password or "
                "STRANGLER_PARITY_PASSWORD)"
            )
        found[DEFAULT_IDENTITY] = Credentials(username, password)
    return found


def fetch_tokens(
    needed: Iterable[str],
    identities: Mapping[str, Credentials],
    *,
    token_url: str,
    timeout: float = 10.0,
) -> dict[str, str]:
    """``Authorization`` values (``Bearer ...``) for each needed identity."""
    tokens = {}
    for name in sorted(set(needed)):
        if name not in identities:
            raise IdentityError(
                f"the corpus uses test identity {name!r}; give it with "
                f"--identity {name}=USERNAME:PASSWORD"
                + (" or --username/--password" if name == DEFAULT_IDENTITY else "")
            )
        creds = identities[name]
        try:
            response = requests.post(
                token_url,
                json={"username": creds.username, "password": creds.password},
                timeout=timeout,
            )
        except requests.RequestException as exc:
            raise IdentityError(
                f"cannot reach the token URL {token_url} ({exc})"
            ) from None
        if response.status_code != 200:
            raise IdentityError(
                f"identity {name!r}: {token_url} answered {response.status_code} "
                f"({response.text[:200]}); check the username and password"
            )
        try:
            access = response.json()["access"]
        except (ValueError, KeyError, TypeError):
            raise IdentityError(
                f"identity {name!r}: {token_url} did not return a JSON 'access' token"
            ) from None
        tokens[name] = f"Bearer {access}"
    return tokens
