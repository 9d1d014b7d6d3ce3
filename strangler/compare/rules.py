"""Noise rules: which differences between two answers do not count, per endpoint.

The rules are the ``parity:`` section of ``migrations_plan/<service>.yaml``::

    parity:
      headers: [content-type, location]     # headers compared (default: these two)
      patterns: {ticket: "T-[0-9]+"}        # extra named patterns (regex, full match)
      scrub: [password]                     # fields replaced when a corpus is recorded
      defaults:                             # rules for every endpoint
        match: {"/**/created_at": iso8601}
      endpoints:
        "GET /api/votes/":                  # METHOD PATH; {name} or * = one segment, ** = rest
          ignore: ["/results/*/created_at"] # JSON-pointer globs, * = one segment, ** = any depth
          match: {"/results/*/id": id}      # equal when both values match the named pattern
          unordered: {"/results": id}       # list compared as a set keyed by that field (~ = whole item)
          tolerance: {"/total": 0.5}        # numbers equal within 0.5 (or "1%" relative)
          allow_status: [[200, 201]]        # status pairs excused; nothing else hides a status change
          headers: [content-type]           # overrides the header allowlist here

Built-in patterns: ``iso8601``, ``uuid``, ``id`` (a positive integer or digit string),
``url``, ``any``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_HEADERS: tuple[str, ...] = ("content-type", "location")
BUILTIN_PATTERNS: dict[str, str] = {
    "iso8601": r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "id": r"[1-9][0-9]*",
    "url": r"https?://\S+",
    "any": r"(?s).*",
}
SECTION_KEYS = {"headers", "patterns", "scrub", "defaults", "endpoints"}
RULE_KEYS = {"ignore", "match", "unordered", "tolerance", "allow_status", "headers"}
METHODS = {"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}
_NUMERIC_SEGMENT = re.compile(r"^(\d+|" + BUILTIN_PATTERNS["uuid"] + r")$")


class RulesError(ValueError):
    """A rules section that cannot be used; the message names the source, key and fix."""


def _pointer_segments(pointer: str) -> list[str]:
    return [
        part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]
    ]


def pointer_join(segments: Iterable[str]) -> str:
    """The RFC 6901 pointer for a list of path segments."""
    return "".join("/" + str(s).replace("~", "~0").replace("/", "~1") for s in segments)


@dataclass(frozen=True)
class PointerGlob:
    """A JSON pointer where ``*`` matches one segment and ``**`` any number of them."""

    text: str

    def matches(self, segments: list[str]) -> bool:
        return _glob_match(_pointer_segments(self.text), segments)


def _glob_match(pattern: list[str], segments: list[str]) -> bool:
    if not pattern:
        return not segments
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_glob_match(rest, segments[i:]) for i in range(len(segments) + 1))
    if not segments:
        return False
    if head != "*" and head != segments[0]:
        return False
    return _glob_match(rest, segments[1:])


@dataclass(frozen=True)
class EndpointPattern:
    """``METHOD PATH`` where METHOD may be ``*`` or ``GET,HEAD`` and PATH segments may be
    ``{name}``/``*`` (one segment) or a final ``**`` (the rest)."""

    text: str
    methods: frozenset[str] | None
    segments: tuple[str, ...]

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        parts = path.split("?", 1)[0].split("/")
        return _glob_match(
            ["*" if s.startswith("{") else s for s in self.segments], parts
        )

    @property
    def specificity(self) -> tuple[int, int, int]:
        literal = sum(1 for s in self.segments if s not in {"*", "**"} and "{" not in s)
        return ("**" not in self.segments, literal, self.methods is not None)


def parse_endpoint(text: str) -> EndpointPattern:
    """Parse ``"GET /api/votes/{id}/"``; raises ValueError saying what is wrong."""
    parts = text.split()
    if len(parts) == 1:
        method_text, path = "*", parts[0]
    elif len(parts) == 2:
        method_text, path = parts
    else:
        raise ValueError("expected 'METHOD /path/' (e.g. 'GET /api/votes/{id}/')")
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/'")
    methods = None
    if method_text != "*":
        methods = frozenset(m.upper() for m in method_text.split(","))
        unknown = sorted(methods - METHODS)
        if unknown:
            raise ValueError(f"unknown method {', '.join(unknown)}")
    segments = tuple(path.split("/"))
    if "**" in segments[:-1]:
        raise ValueError("'**' may only be the last path segment")
    return EndpointPattern(text, methods, segments)


def normalise_path(method: str, path: str) -> str:
    """``GET /api/votes/12/?x=1`` → ``GET /api/votes/{id}/``: the endpoint of an unruled path."""
    parts = path.split("?", 1)[0].split("/")
    parts = ["{id}" if _NUMERIC_SEGMENT.match(p) else p for p in parts]
    return f"{method.upper()} {'/'.join(parts)}"


@dataclass
class EndpointRules:
    """The rules in force for one endpoint, after merging defaults and every matching block."""

    ignore: list[PointerGlob] = field(default_factory=list)
    match: dict[str, tuple[PointerGlob, str, re.Pattern[str]]] = field(
        default_factory=dict
    )
    unordered: dict[str, tuple[PointerGlob, str | None]] = field(default_factory=dict)
    tolerance: dict[str, tuple[PointerGlob, float, bool]] = field(default_factory=dict)
    allow_status: set[tuple[int, int]] = field(default_factory=set)
    headers: tuple[str, ...] = DEFAULT_HEADERS

    def is_ignored(self, segments: list[str]) -> bool:
        return any(glob.matches(segments) for glob in self.ignore)

    def pattern_for(self, segments: list[str]) -> tuple[str, re.Pattern[str]] | None:
        for glob, name, regex in reversed(self.match.values()):
            if glob.matches(segments):
                return name, regex
        return None

    def unordered_key(self, segments: list[str]) -> tuple[bool, str | None]:
        for glob, key in reversed(self.unordered.values()):
            if glob.matches(segments):
                return True, key
        return False, None

    def tolerance_for(self, segments: list[str]) -> tuple[float, bool] | None:
        for glob, amount, relative in reversed(self.tolerance.values()):
            if glob.matches(segments):
                return amount, relative
        return None


@dataclass
class _Block:
    pattern: EndpointPattern | None
    raw: Mapping[str, Any]


@dataclass
class RuleSet:
    """Validated noise rules; ``for_endpoint`` gives the merged rules for one request."""

    headers: tuple[str, ...] = DEFAULT_HEADERS
    patterns: dict[str, re.Pattern[str]] = field(default_factory=dict)
    scrub: tuple[str, ...] = ()
    source: str = "<rules>"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    endpoints: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    _parsed: list[EndpointPattern] = field(default_factory=list, repr=False)

    def endpoint_name(self, method: str, path: str) -> str:
        """The most specific endpoint pattern matching the request, else its normalised path."""
        best = self._matching(method, path)
        return best[-1].text if best else normalise_path(method, path)

    def _matching(self, method: str, path: str) -> list[EndpointPattern]:
        found = [p for p in self._parsed if p.matches(method, path)]
        return sorted(found, key=lambda p: p.specificity)

    def for_endpoint(self, method: str, path: str) -> EndpointRules:
        rules = EndpointRules(headers=self.headers)
        self._apply(rules, self.defaults)
        for pattern in self._matching(method, path):
            self._apply(rules, self.endpoints[pattern.text])
        return rules

    def _apply(self, rules: EndpointRules, raw: Mapping[str, Any]) -> None:
        rules.ignore.extend(PointerGlob(p) for p in raw.get("ignore", ()))
        for pointer, name in (raw.get("match") or {}).items():
            rules.match[pointer] = (PointerGlob(pointer), name, self.patterns[name])
        for pointer, key in (raw.get("unordered") or {}).items():
            rules.unordered[pointer] = (PointerGlob(pointer), key)
        for pointer, amount in (raw.get("tolerance") or {}).items():
            relative = isinstance(amount, str)
            value = float(amount.rstrip("%")) / 100 if relative else float(amount)
            rules.tolerance[pointer] = (PointerGlob(pointer), value, relative)
        rules.allow_status.update(tuple(pair) for pair in raw.get("allow_status", ()))
        if "headers" in raw:
            rules.headers = tuple(h.lower() for h in raw["headers"])

    def to_dict(self) -> dict[str, Any]:
        """The rules as the ``parity:`` section they were loaded from."""
        custom = {
            name: regex.pattern
            for name, regex in self.patterns.items()
            if BUILTIN_PATTERNS.get(name) != regex.pattern
        }
        section: dict[str, Any] = {"headers": list(self.headers)}
        if custom:
            section["patterns"] = custom
        if self.scrub:
            section["scrub"] = list(self.scrub)
        if self.defaults:
            section["defaults"] = dict(self.defaults)
        if self.endpoints:
            section["endpoints"] = {k: dict(v) for k, v in self.endpoints.items()}
        return section


def load_rules(source: Mapping[str, Any] | str | Path | None) -> RuleSet:
    """Validate a ``parity:`` section (a dict) or read it from a YAML file that has one."""
    if source is None:
        return RuleSet()
    if isinstance(source, Mapping):
        section = source.get("parity", source)
        return _build(section, "<rules>")
    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RulesError(f"{path}: cannot read rules file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RulesError(f"{path}:{where} is not valid YAML ({exc})") from None
    if not isinstance(data, Mapping) or "parity" not in data:
        raise RulesError(
            f"{path}: no 'parity:' section (put the noise rules under a top-level 'parity:' key)"
        )
    return _build(data["parity"], str(path))


def _build(section: Any, source: str) -> RuleSet:
    def fail(key: str, why: str) -> RulesError:
        return RulesError(f"{source}: parity{'.' + key if key else ''}: {why}")

    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise fail("", "must be a mapping of rule keys")
    unknown = sorted(set(section) - SECTION_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (expected one of {sorted(SECTION_KEYS)})")
    patterns = {name: re.compile(rx) for name, rx in BUILTIN_PATTERNS.items()}
    for name, regex in _mapping(section.get("patterns"), "patterns", fail).items():
        if not isinstance(regex, str):
            raise fail(f"patterns.{name}", "must be a regular expression string")
        try:
            patterns[str(name)] = re.compile(regex)
        except re.error as exc:
            raise fail(
                f"patterns.{name}", f"invalid regular expression ({exc})"
            ) from None
    headers = _headers(section.get("headers", list(DEFAULT_HEADERS)), "headers", fail)
    scrub = section.get("scrub", [])
    if not isinstance(scrub, list) or not all(isinstance(s, str) for s in scrub):
        raise fail("scrub", "must be a list of field names")
    defaults = _rule_block(section.get("defaults"), "defaults", patterns, fail)
    endpoints: dict[str, Mapping[str, Any]] = {}
    parsed: list[EndpointPattern] = []
    for text, block in _mapping(section.get("endpoints"), "endpoints", fail).items():
        key = f"endpoints.{text!r}"
        try:
            pattern = parse_endpoint(str(text))
        except ValueError as exc:
            raise fail(key, str(exc)) from None
        endpoints[pattern.text] = _rule_block(block, key, patterns, fail)
        parsed.append(pattern)
    return RuleSet(
        headers=headers,
        patterns=patterns,
        scrub=tuple(scrub),
        source=source,
        defaults=defaults,
        endpoints=endpoints,
        _parsed=parsed,
    )


def _mapping(value: Any, key: str, fail) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(key, "must be a mapping")
    return value


def _headers(value: Any, key: str, fail) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise fail(key, "must be a list of header names, e.g. [content-type, location]")
    return tuple(h.lower() for h in value)


def _pointer(value: Any, key: str, fail) -> str:
    if not isinstance(value, str) or not (value == "" or value.startswith("/")):
        raise fail(
            key, f"{value!r} is not a JSON pointer (write it like '/results/*/id')"
        )
    return value


def _rule_block(block: Any, key: str, patterns, fail) -> dict[str, Any]:
    block = _mapping(block, key, fail)
    unknown = sorted(set(block) - RULE_KEYS)
    if unknown:
        raise fail(
            f"{key}.{unknown[0]}", f"unknown rule (expected one of {sorted(RULE_KEYS)})"
        )
    out: dict[str, Any] = {}
    if "ignore" in block:
        if not isinstance(block["ignore"], list):
            raise fail(f"{key}.ignore", "must be a list of JSON pointers")
        out["ignore"] = [
            _pointer(p, f"{key}.ignore[{i}]", fail)
            for i, p in enumerate(block["ignore"])
        ]
    if "match" in block:
        out["match"] = {}
        for pointer, name in _mapping(block["match"], f"{key}.match", fail).items():
            _pointer(pointer, f"{key}.match", fail)
            if name not in patterns:
                raise fail(
                    f"{key}.match.{pointer}",
                    f"unknown pattern {name!r} (built in: {', '.join(BUILTIN_PATTERNS)}; "
                    "define others under parity.patterns)",
                )
            out["match"][pointer] = name
    if "unordered" in block:
        out["unordered"] = {}
        for pointer, field_name in _mapping(
            block["unordered"], f"{key}.unordered", fail
        ).items():
            _pointer(pointer, f"{key}.unordered", fail)
            if field_name is not None and not isinstance(field_name, str):
                raise fail(
                    f"{key}.unordered.{pointer}",
                    "must be the key field's name, or ~ to compare whole items",
                )
            out["unordered"][pointer] = field_name
    if "tolerance" in block:
        out["tolerance"] = {}
        for pointer, amount in _mapping(
            block["tolerance"], f"{key}.tolerance", fail
        ).items():
            _pointer(pointer, f"{key}.tolerance", fail)
            if not _valid_tolerance(amount):
                raise fail(
                    f"{key}.tolerance.{pointer}",
                    f"{amount!r} must be a non-negative number or a percentage like '1%'",
                )
            out["tolerance"][pointer] = amount
    if "allow_status" in block:
        pairs = block["allow_status"]
        if not isinstance(pairs, list) or not all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(s, int) and 100 <= s <= 599 for s in p)
            for p in pairs
        ):
            raise fail(
                f"{key}.allow_status",
                "must be a list of [primary, candidate] status pairs, e.g. [[200, 201]]",
            )
        out["allow_status"] = [list(p) for p in pairs]
    if "headers" in block:
        out["headers"] = list(_headers(block["headers"], f"{key}.headers", fail))
    return out


def _valid_tolerance(amount: Any) -> bool:
    if isinstance(amount, bool):
        return False
    if isinstance(amount, int | float):
        return amount >= 0
    if isinstance(amount, str) and amount.endswith("%"):
        try:
            return float(amount[:-1]) >= 0
        except ValueError:
            return False
    return False
