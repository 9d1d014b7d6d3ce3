"""Edits the ``route`` verbs make to a config: each takes the live raw config and returns a
new one, leaving validation of the result to the store."""

from __future__ import annotations

import copy
from typing import Any

from strangler.routing.schema import RouterConfig, parse_selector


class EditError(ValueError):
    """The edit cannot apply; the message says why and what to do."""


def _index(config: RouterConfig, selector: str) -> int | None:
    route = config.find(selector)
    if route is None:
        return None
    return config.routes.index(route)


def _raw_route(raw: dict[str, Any], config: RouterConfig, selector: str) -> dict:
    index = _index(config, selector)
    if index is None:
        known = "; ".join(f"{r.name!r}" for r in config.routes)
        raise EditError(
            f"no route {selector!r}; fix: use a route name or 'METHODS PATH' from "
            f"`strangler route list` (routes: {known}), or create it with `route set`"
        )
    # A validated config keeps file order, so the n-th route is the n-th raw entry.
    return raw["routes"][index]


def set_backend(
    config: RouterConfig,
    selector: str,
    *,
    to: str,
    fallback: str | None = None,
    clear_fallback: bool = False,
) -> dict[str, Any]:
    raw = copy.deepcopy(config.raw)
    index = _index(config, selector)
    if index is None:
        try:
            methods, path = parse_selector(selector)
        except ValueError as exc:
            raise EditError(
                f'{exc}; fix: write the selector as "GET /api/votes/**"'
            ) from None
        entry: dict[str, Any] = {
            "name": selector,
            "methods": sorted(methods),
            "path": path,
            "to": to,
        }
        raw.setdefault("routes", []).append(entry)
    else:
        entry = raw["routes"][index]
        entry["to"] = to
        canary = entry.get("canary")
        if isinstance(canary, dict) and canary.get("to") == to:
            del entry["canary"]
        shadow = entry.get("shadow")
        shadow_to = shadow.get("to") if isinstance(shadow, dict) else shadow
        if shadow_to == to:
            del entry["shadow"]
    if clear_fallback:
        entry.pop("fallback", None)
    elif fallback is not None:
        entry["fallback"] = fallback
    if entry.get("fallback") == to:
        del entry["fallback"]
    return raw


def set_canary(
    config: RouterConfig,
    selector: str,
    *,
    to: str | None,
    percent: float | None,
    key: str | None = None,
    off: bool = False,
) -> dict[str, Any]:
    raw = copy.deepcopy(config.raw)
    entry = _raw_route(raw, config, selector)
    if off:
        entry.pop("canary", None)
        return raw
    current = entry.get("canary") if isinstance(entry.get("canary"), dict) else {}
    canary = dict(current)
    if to is not None:
        canary["to"] = to
    if percent is not None:
        canary["percent"] = percent
    if key is not None:
        canary["key"] = key
    if "to" not in canary or "percent" not in canary:
        raise EditError("a new canary needs --to BACKEND and --percent N")
    entry["canary"] = canary
    return raw


def set_shadow(
    config: RouterConfig,
    selector: str,
    *,
    to: str | None,
    percent: float | None = None,
    off: bool = False,
) -> dict[str, Any]:
    raw = copy.deepcopy(config.raw)
    entry = _raw_route(raw, config, selector)
    if off:
        entry.pop("shadow", None)
        return raw
    current = entry.get("shadow")
    shadow = (
        dict(current)
        if isinstance(current, dict)
        else ({"to": current} if current else {})
    )
    if to is not None:
        shadow["to"] = to
    if percent is not None:
        shadow["percent"] = percent
    if "to" not in shadow:
        raise EditError("a new shadow needs --to BACKEND")
    entry["shadow"] = shadow
    return raw
