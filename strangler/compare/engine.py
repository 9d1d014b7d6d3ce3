"""``compare``: status, allowlisted headers and the normalised JSON body of two answers.

A difference that a rule excuses goes to ``Comparison.noise`` instead of
``Comparison.differences``; a status difference is excused only by an explicit
``allow_status`` pair, never by a body rule.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from strangler.compare.model import Comparison, Difference, Exchange
from strangler.compare.rules import EndpointRules, RuleSet, pointer_join

_MISSING = object()
# Lists whose items are objects carrying this field are matched by it before being
# compared, so a reordering is reported once as "order" and not as a cascade of values.
IDENTITY_FIELD = "id"


def compare(
    primary: Exchange,
    candidate: Exchange,
    *,
    method: str,
    path: str,
    rules: RuleSet | None = None,
) -> Comparison:
    """Compare the candidate's answer with the primary's under the endpoint's noise rules."""
    ruleset = rules or RuleSet()
    endpoint_rules = ruleset.for_endpoint(method, path)
    result = Comparison(
        endpoint=ruleset.endpoint_name(method, path),
        method=method.upper(),
        path=path,
    )
    _compare_status(primary, candidate, endpoint_rules, result)
    _compare_headers(primary, candidate, endpoint_rules, result)
    _compare_bodies(primary, candidate, endpoint_rules, result)
    return result


def _compare_status(
    primary: Exchange, candidate: Exchange, rules: EndpointRules, out: Comparison
) -> None:
    if primary.status == candidate.status:
        return
    diff = Difference("status", "status", primary.status, candidate.status)
    if (primary.status, candidate.status) in rules.allow_status:
        out.noise.append(diff)
    else:
        out.differences.append(diff)


def _compare_headers(
    primary: Exchange, candidate: Exchange, rules: EndpointRules, out: Comparison
) -> None:
    for name in rules.headers:
        ours, theirs = primary.header(name), candidate.header(name)
        if ours is None and theirs is None:
            continue
        if ours is None or theirs is None or ours.strip() != theirs.strip():
            out.differences.append(Difference(f"header:{name}", "header", ours, theirs))


def _parse_json(exchange: Exchange) -> Any:
    content_type = (exchange.header("content-type") or "").lower()
    looks_json = "json" in content_type or exchange.body.lstrip()[:1] in (b"{", b"[")
    if not exchange.body.strip() or not looks_json:
        return _MISSING
    try:
        return json.loads(exchange.body)
    except (ValueError, UnicodeDecodeError):
        return _MISSING


def _compare_bodies(
    primary: Exchange, candidate: Exchange, rules: EndpointRules, out: Comparison
) -> None:
    ours, theirs = _parse_json(primary), _parse_json(candidate)
    if ours is _MISSING or theirs is _MISSING:
        if primary.body != candidate.body:
            out.differences.append(
                Difference("body", "body", primary.body, candidate.body)
            )
        return
    _Walker(rules, out).walk(ours, theirs, [])


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _same(ours: Any, theirs: Any) -> bool:
    if _type_name(ours) != _type_name(theirs):
        return False
    if isinstance(ours, dict | list):
        # Python's == treats True as 1 inside containers; canonical JSON does not.
        return _canonical(ours) == _canonical(theirs)
    return ours == theirs


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


class _Walker:
    """Walks two parsed JSON documents side by side, recording each difference once."""

    def __init__(self, rules: EndpointRules, out: Comparison) -> None:
        self.rules = rules
        self.out = out

    def record(self, segments: list[str], kind: str, ours: Any, theirs: Any) -> None:
        ours = None if ours is _MISSING else ours
        theirs = None if theirs is _MISSING else theirs
        diff = Difference(pointer_join(segments), kind, ours, theirs)
        if self.rules.is_ignored(segments):
            self.out.noise.append(diff)
        else:
            self.out.differences.append(diff)

    def walk(self, ours: Any, theirs: Any, segments: list[str]) -> None:
        if _same(ours, theirs):
            return
        if self.rules.is_ignored(segments):
            self.out.noise.append(
                Difference(pointer_join(segments), "value", ours, theirs)
            )
            return
        if self._excused(ours, theirs, segments):
            return
        if _type_name(ours) != _type_name(theirs):
            self.record(segments, "type", ours, theirs)
        elif isinstance(ours, dict):
            self.walk_object(ours, theirs, segments)
        elif isinstance(ours, list):
            self.walk_list(ours, theirs, segments)
        else:
            self.record(segments, "value", ours, theirs)

    def _excused(self, ours: Any, theirs: Any, segments: list[str]) -> bool:
        pattern = self.rules.pattern_for(segments)
        if pattern is not None:
            a, b = _as_text(ours), _as_text(theirs)
            regex = pattern[1]
            if (
                a is not None
                and b is not None
                and regex.fullmatch(a)
                and regex.fullmatch(b)
            ):
                self.out.noise.append(
                    Difference(pointer_join(segments), "value", ours, theirs)
                )
                return True
        tolerance = self.rules.tolerance_for(segments)
        if tolerance is not None and _type_name(ours) == _type_name(theirs) == "number":
            amount, relative = tolerance
            allowed = amount * max(abs(ours), abs(theirs)) if relative else amount
            if abs(ours - theirs) <= allowed:
                self.out.noise.append(
                    Difference(pointer_join(segments), "value", ours, theirs)
                )
                return True
        return False

    def walk_object(self, ours: dict, theirs: dict, segments: list[str]) -> None:
        for key in ours:
            if key in theirs:
                self.walk(ours[key], theirs[key], [*segments, key])
            else:
                self.record([*segments, key], "missing", ours[key], _MISSING)
        for key in theirs:
            if key not in ours:
                self.record([*segments, key], "extra", _MISSING, theirs[key])

    def walk_list(self, ours: list, theirs: list, segments: list[str]) -> None:
        unordered, key = self.rules.unordered_key(segments)
        identity = self._identity(ours, theirs, key if unordered else IDENTITY_FIELD)
        if identity is None and unordered:
            identity = _canonical
        if identity is None:
            self.walk_positions(ours, theirs, segments)
            return
        our_ids = [identity(item) for item in ours]
        their_ids = [identity(item) for item in theirs]
        if (
            our_ids != their_ids
            and Counter(our_ids) == Counter(their_ids)
            and len(set(our_ids)) == len(our_ids)
        ):
            diff = Difference(pointer_join(segments), "order", our_ids, their_ids)
            (self.out.noise if unordered else self.out.differences).append(diff)
        elif not unordered and our_ids != their_ids:
            # Not a pure reordering: items were added, dropped or replaced; compare by
            # position so a missing page or a wrong row shows where it happens.
            self.walk_positions(ours, theirs, segments)
            return
        self.walk_matched(ours, theirs, our_ids, their_ids, segments)

    def walk_matched(
        self,
        ours: list,
        theirs: list,
        our_ids: list[str],
        their_ids: list[str],
        segments: list[str],
    ) -> None:
        positions: dict[str, list[int]] = {}
        for index, ident in enumerate(their_ids):
            positions.setdefault(ident, []).append(index)
        used: set[int] = set()
        for index, ident in enumerate(our_ids):
            if not positions.get(ident):
                self.record([*segments, str(index)], "missing", ours[index], _MISSING)
                continue
            match = positions[ident].pop(0)
            used.add(match)
            self.walk(ours[index], theirs[match], [*segments, str(index)])
        for index, item in enumerate(theirs):
            if index not in used:
                self.record([*segments, str(index)], "extra", _MISSING, item)

    def walk_positions(self, ours: list, theirs: list, segments: list[str]) -> None:
        for index in range(max(len(ours), len(theirs))):
            child = [*segments, str(index)]
            if index >= len(theirs):
                self.record(child, "missing", ours[index], _MISSING)
            elif index >= len(ours):
                self.record(child, "extra", _MISSING, theirs[index])
            else:
                self.walk(ours[index], theirs[index], child)

    @staticmethod
    def _identity(ours: list, theirs: list, key: str | None):
        items = [*ours, *theirs]
        if key is not None and all(isinstance(i, dict) and key in i for i in items):
            return lambda item: _canonical(item[key])
        if all(not isinstance(i, dict | list) for i in items):
            return _canonical
        return None
