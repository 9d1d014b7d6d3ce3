"""The router config file: its schema, its meaning checks, and the typed ``RouterConfig``.

``load_config(text, source=...)`` parses YAML keeping each value's line, checks the schema
(keys, types, ranges) and the meaning (unknown backends, overlapping patterns, canary and
shadow targets, unsafe shadowing without write isolation), and raises ``ConfigError`` listing
every problem as ``file:line: key: what is wrong; fix: what to do``. Nothing is half-loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from strangler.routing.patterns import Pattern, PatternError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE"}
)
ANY_METHOD = "*"
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
HEADER_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
ALWAYS_INTERNAL = ("/_strangler/internal/**",)
MAX_RECHECK_SECONDS = 30.0
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes, the last one NUL


@dataclass(frozen=True)
class Problem:
    source: str
    line: int | None
    key: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.key}: {self.message}; fix: {self.fix}"


class ConfigError(ValueError):
    """A config that must not be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    connect_timeout: float = 1.0
    read_timeout: float = 15.0
    dry_run: bool = False
    max_connections: int = 200
    # A Unix socket to connect to instead of the URL's host and port (gunicorn --bind
    # unix:PATH); the URL still names the Host the backend is sent.
    socket: str | None = None


@dataclass(frozen=True)
class Canary:
    to: str
    percent: float
    key: str = "user"

    @property
    def threshold(self) -> int:
        """Buckets below this (of 10,000) go to the canary."""
        return round(self.percent * 100)


@dataclass(frozen=True)
class Shadow:
    to: str
    percent: float = 100.0


@dataclass(frozen=True)
class Route:
    name: str
    methods: frozenset[str]
    pattern: Pattern
    to: str
    canary: Canary | None = None
    shadow: Shadow | None = None
    fallback: str | None = None

    @property
    def path(self) -> str:
        return self.pattern.text

    @property
    def any_method(self) -> bool:
        return ANY_METHOD in self.methods

    def allows(self, method: str) -> bool:
        return ANY_METHOD in self.methods or method in self.methods

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        return (*self.pattern.specificity, 0 if self.any_method else 1)

    @property
    def selector(self) -> str:
        return f"{','.join(sorted(self.methods))} {self.path}"


@dataclass(frozen=True)
class Settings:
    max_body_bytes: int = 10 * 1024 * 1024
    breaker_failures: int = 5
    breaker_reset_seconds: float = 5.0
    shadow_queue: int = 1000
    shadow_workers: int = 8
    shadow_max_body_bytes: int = 1024 * 1024
    shadow_recheck_seconds: float = 2.0
    internal: tuple[Pattern, ...] = ()


@dataclass(frozen=True)
class RouterConfig:
    backends: dict[str, Backend]
    routes: tuple[Route, ...]
    settings: Settings = field(default_factory=Settings)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def match(self, method: str, path: str) -> Route | None:
        """The most specific route for this request (validation rules out ties)."""
        best: Route | None = None
        for route in self.routes:
            if (
                route.allows(method)
                and route.pattern.match(path)
                and (best is None or route.specificity > best.specificity)
            ):
                best = route
        return best

    def is_internal(self, path: str) -> bool:
        return any(p.match(path) for p in self.settings.internal)

    def find(self, selector: str) -> Route | None:
        """A route by name, or by ``"METHODS PATH"`` with the same method set and path."""
        for route in self.routes:
            if route.name == selector:
                return route
        methods, path = parse_selector(selector)
        for route in self.routes:
            if route.methods == methods and route.path == path:
                return route
        return None


def parse_selector(selector: str) -> tuple[frozenset[str], str]:
    """``"GET,HEAD /api/votes/**"`` → methods and path; raises ValueError when malformed."""
    parts = selector.split()
    if len(parts) != 2:
        raise ValueError(
            f"{selector!r} is not 'METHODS PATH' (like \"GET /api/votes/**\") nor a route name"
        )
    methods = frozenset(m.strip().upper() for m in parts[0].split(",") if m.strip())
    unknown = sorted(methods - KNOWN_METHODS - {ANY_METHOD})
    if unknown:
        raise ValueError(f"{selector!r}: unknown method(s) {', '.join(unknown)}")
    Pattern.parse(parts[1])
    return methods, parts[1]


# --- YAML with lines -------------------------------------------------------------------


def _plain(node: yaml.Node, lines: dict[tuple, int], path: tuple) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, lines, (*path, key))
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, lines, (*path, i)) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    lines: dict[tuple, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError(
            [
                Problem(
                    source,
                    line,
                    "(yaml)",
                    f"not valid YAML ({getattr(exc, 'problem', exc)})",
                    "correct the syntax at that line",
                )
            ]
        ) from None
    if node is None:
        return None, lines
    return _plain(node, lines, ()), lines


# --- validation --------------------------------------------------------------------------


class _Checker:
    def __init__(self, source: str, lines: dict[tuple, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def line(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def add(self, path: tuple, message: str, fix: str) -> None:
        key = "".join(
            f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
            for i, p in enumerate(path)
        )
        self.problems.append(
            Problem(self.source, self.line(path), key or "(top)", message, fix)
        )

    def keys(self, value: dict, path: tuple, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        for key in value:
            if key not in allowed:
                self.add(
                    (*path, key),
                    "unknown key",
                    f"remove it or use one of: {', '.join(allowed)}",
                )

    def number(
        self, value: Any, path: tuple, *, low: float, high: float | None = None
    ) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(path, f"must be a number, got {value!r}", "write a plain number")
            return None
        if value < low or (high is not None and value > high):
            rng = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            self.add(path, f"{value!r} is out of range", f"use a value {rng}")
            return None
        return float(value)

    def positive(self, value: Any, path: tuple) -> float | None:
        number = self.number(value, path, low=0)
        if number is not None and number <= 0:
            self.add(path, "must be greater than 0", "use a positive number")
            return None
        return number


def _backend(c: _Checker, name: Any, spec: Any) -> Backend | None:
    path = ("backends", name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        c.add(
            path,
            f"backend name {name!r} is not valid",
            "use lowercase letters, digits, '-' or '_' (like vote)",
        )
        return None
    if isinstance(spec, str):
        spec = {"url": spec}
    if not isinstance(spec, dict):
        c.add(path, "must be a mapping with url", "write `url: http://host:port`")
        return None
    c.keys(
        spec,
        path,
        [
            "url",
            "connect_timeout",
            "read_timeout",
            "dry_run",
            "max_connections",
            "socket",
        ],
    )
    url = spec.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.path not in {"", "/"}
        or parts.query
    ):
        c.add(
            (*path, "url"),
            f"{url!r} is not a backend base URL",
            "write http://host:port with no path (like http://127.0.0.1:8001)",
        )
        return None
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        c.add((*path, "url"), f"{url!r} has a bad port", "use a port 1-65535")
        return None
    connect = c.positive(spec.get("connect_timeout", 1.0), (*path, "connect_timeout"))
    read = c.positive(spec.get("read_timeout", 15.0), (*path, "read_timeout"))
    dry_run = spec.get("dry_run", False)
    if not isinstance(dry_run, bool):
        c.add((*path, "dry_run"), "must be true or false", "write true or false")
    conns = spec.get("max_connections", 200)
    if isinstance(conns, bool) or not isinstance(conns, int) or conns < 1:
        c.add((*path, "max_connections"), f"{conns!r}", "use a whole number >= 1")
    sock = spec.get("socket")
    if sock is not None and (
        not isinstance(sock, str)
        or not sock.startswith("/")
        or len(sock.encode()) > UNIX_PATH_MAX
        or "\0" in sock
    ):
        c.add(
            (*path, "socket"),
            f"{sock!r} is not a Unix socket path",
            f"write an absolute path of at most {UNIX_PATH_MAX} bytes "
            "(like /run/strangler/monolith.sock)",
        )
        sock = None
    elif sock is not None and parts.scheme != "http":
        c.add(
            (*path, "socket"),
            "a Unix socket carries plain HTTP only",
            "use an http:// url with socket, or drop socket",
        )
        sock = None
    if connect is None or read is None:
        return None
    return Backend(
        name,
        url.rstrip("/"),
        connect,
        read,
        dry_run is True,
        conns if isinstance(conns, int) else 200,
        sock,
    )


def _backend_ref(
    c: _Checker, value: Any, path: tuple, backends: dict[str, Any]
) -> str | None:
    if not isinstance(value, str) or value not in backends:
        known = ", ".join(sorted(backends)) or "(none defined)"
        c.add(
            path,
            f"unknown backend {value!r}",
            f"use one of the backends: {known}, or define it under backends",
        )
        return None
    return value


def _key(c: _Checker, value: Any, path: tuple) -> str | None:
    if value == "user":
        return value
    if isinstance(value, str) and ":" in value:
        kind, _, name = value.partition(":")
        if kind in {"header", "cookie"} and HEADER_RE.match(name):
            return f"{kind}:{name.lower() if kind == 'header' else name}"
    c.add(
        path,
        f"canary key {value!r} is not valid",
        "use user (JWT sub), header:NAME or cookie:NAME",
    )
    return None


def _route(
    c: _Checker, index: int, spec: Any, backends: dict[str, Any]
) -> Route | None:
    path = ("routes", index)
    if not isinstance(spec, dict):
        c.add(path, "must be a mapping", "write name, methods, path, to")
        return None
    c.keys(
        spec, path, ["name", "methods", "path", "to", "canary", "shadow", "fallback"]
    )
    ok = True
    methods_raw = spec.get("methods", ["*"])
    if isinstance(methods_raw, str):
        methods_raw = [m for m in re.split(r"[,\s]+", methods_raw) if m]
    methods: frozenset[str] = frozenset()
    if not isinstance(methods_raw, list) or not methods_raw:
        c.add(
            (*path, "methods"), "must be a list of methods", "write [GET, HEAD] or [*]"
        )
        ok = False
    else:
        methods = frozenset(str(m).upper() for m in methods_raw)
        bad = sorted(methods - KNOWN_METHODS - {ANY_METHOD})
        if bad:
            c.add(
                (*path, "methods"),
                f"unknown method(s) {', '.join(bad)}",
                f"use {', '.join(sorted(KNOWN_METHODS))} or *",
            )
            ok = False
        if ANY_METHOD in methods and len(methods) > 1:
            c.add((*path, "methods"), "'*' mixed with methods", "write [*] alone")
            ok = False
    pattern = None
    if "path" not in spec:
        c.add(path, "missing path", "add `path: /api/votes/**`")
        ok = False
    else:
        try:
            pattern = Pattern.parse(spec["path"])
        except PatternError as exc:
            c.add((*path, "path"), str(exc), "write a pattern like /api/votes/**")
            ok = False
    if "to" not in spec:
        c.add(path, "missing to", "add `to: <backend>`")
        ok = False
    to = (
        _backend_ref(c, spec.get("to"), (*path, "to"), backends)
        if "to" in spec
        else None
    )
    name = spec.get("name")
    if name is None and pattern is not None:
        name = f"{','.join(sorted(methods))} {pattern.text}"
    if not isinstance(name, str) or not name.strip() or ";" in name or "\n" in name:
        c.add(
            (*path, "name"), f"route name {name!r}", "use a non-empty name without ';'"
        )
        ok = False
    canary = None
    if spec.get("canary") is not None:
        canary = _canary(c, spec["canary"], (*path, "canary"), backends, to)
        ok = ok and canary is not None
    shadow = None
    if spec.get("shadow") is not None:
        shadow = _shadow(c, spec["shadow"], (*path, "shadow"), backends, to)
        ok = ok and shadow is not None
        if shadow is not None and backends.get(shadow.to) is not None:
            unsafe = ANY_METHOD in methods or bool(methods - SAFE_METHODS)
            if unsafe and not backends[shadow.to].dry_run:
                c.add(
                    (*path, "shadow"),
                    f"shadowing unsafe methods to {shadow.to!r}, which has no write "
                    "isolation, would execute writes twice",
                    f"limit methods to GET/HEAD/OPTIONS, or set backends.{shadow.to}."
                    "dry_run: true once that service runs strangler.web.dryrun."
                    "DryRunMiddleware",
                )
                ok = False
    fallback = None
    if spec.get("fallback") is not None:
        fallback = _backend_ref(c, spec["fallback"], (*path, "fallback"), backends)
        if fallback is not None and fallback == to:
            c.add(
                (*path, "fallback"),
                "fallback is the route's own backend",
                "name another backend",
            )
            fallback = None
        ok = ok and fallback is not None
    if not ok or pattern is None or to is None:
        return None
    return Route(name.strip(), methods, pattern, to, canary, shadow, fallback)


def _canary(
    c: _Checker, spec: Any, path: tuple, backends: dict[str, Any], to: str | None
) -> Canary | None:
    if not isinstance(spec, dict):
        c.add(path, "must be a mapping", "write {to: vote, percent: 10, key: user}")
        return None
    c.keys(spec, path, ["to", "percent", "key"])
    target = _backend_ref(c, spec.get("to"), (*path, "to"), backends)
    if target is not None and target == to:
        c.add(
            (*path, "to"),
            "canary goes to the route's own backend",
            "name another backend",
        )
        target = None
    percent = c.number(spec.get("percent"), (*path, "percent"), low=0, high=100)
    key = _key(c, spec.get("key", "user"), (*path, "key"))
    if target is None or percent is None or key is None:
        return None
    return Canary(target, percent, key)


def _shadow(
    c: _Checker, spec: Any, path: tuple, backends: dict[str, Any], to: str | None
) -> Shadow | None:
    if isinstance(spec, str):
        spec = {"to": spec}
    if not isinstance(spec, dict):
        c.add(
            path, "must be a backend name or mapping", "write {to: vote, percent: 50}"
        )
        return None
    c.keys(spec, path, ["to", "percent"])
    target = _backend_ref(c, spec.get("to"), (*path, "to"), backends)
    if target is not None and target == to:
        c.add(
            (*path, "to"), "shadow is the route's own backend", "name another backend"
        )
        target = None
    percent = c.number(spec.get("percent", 100), (*path, "percent"), low=0, high=100)
    if target is None or percent is None:
        return None
    return Shadow(target, percent)


def _settings(c: _Checker, spec: Any) -> Settings:
    path = ("settings",)
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        c.add(path, "must be a mapping", "see router/config.example.yaml")
        spec = {}
    defaults = Settings()
    c.keys(
        spec,
        path,
        [
            "max_body_bytes",
            "breaker_failures",
            "breaker_reset_seconds",
            "shadow_queue",
            "shadow_workers",
            "shadow_max_body_bytes",
            "shadow_recheck_seconds",
            "internal",
        ],
    )
    ints = {}
    for key in (
        "max_body_bytes",
        "breaker_failures",
        "shadow_queue",
        "shadow_workers",
        "shadow_max_body_bytes",
    ):
        value = spec.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            c.add(
                (*path, key), f"{value!r} is not a whole number >= 1", "use e.g. 1000"
            )
            value = getattr(defaults, key)
        ints[key] = value
    reset = c.positive(
        spec.get("breaker_reset_seconds", defaults.breaker_reset_seconds),
        (*path, "breaker_reset_seconds"),
    )
    # Capped: a pending recheck holds the request and the primary's answer in memory.
    recheck = c.number(
        spec.get("shadow_recheck_seconds", defaults.shadow_recheck_seconds),
        (*path, "shadow_recheck_seconds"),
        low=0,
        high=MAX_RECHECK_SECONDS,
    )
    internal: list[Pattern] = [Pattern.parse(p) for p in ALWAYS_INTERNAL]
    raw_internal = spec.get("internal", [])
    if not isinstance(raw_internal, list):
        c.add(
            (*path, "internal"), "must be a list of path patterns", "write [/admin/**]"
        )
        raw_internal = []
    for i, text in enumerate(raw_internal):
        try:
            internal.append(Pattern.parse(text))
        except PatternError as exc:
            c.add((*path, "internal", i), str(exc), "write a pattern like /internal/**")
    return Settings(
        breaker_reset_seconds=reset or defaults.breaker_reset_seconds,
        shadow_recheck_seconds=(
            defaults.shadow_recheck_seconds if recheck is None else recheck
        ),
        internal=tuple(internal),
        **ints,
    )


def _overlaps(c: _Checker, routes: list[tuple[int, Route]]) -> None:
    for i, (ia, a) in enumerate(routes):
        for ib, b in routes[i + 1 :]:
            if a.name == b.name:
                c.add(
                    ("routes", ib, "name"),
                    f"route name {b.name!r} is also used by routes[{ia}]",
                    "give every route a unique name",
                )
            common = (
                a.methods | b.methods
                if a.any_method or b.any_method
                else a.methods & b.methods
            )
            if not common or a.specificity != b.specificity:
                continue
            if a.pattern.overlaps(b.pattern):
                c.add(
                    ("routes", ib, "path"),
                    f"{b.selector!r} ties with routes[{ia}] {a.selector!r} "
                    f"(line {c.line(('routes', ia))}): a request could match both "
                    "equally",
                    "make one pattern more specific or split the methods so they "
                    "do not share any",
                )


def validate(data: Any, lines: dict[tuple, int], source: str) -> RouterConfig:
    c = _Checker(source, lines)
    if not isinstance(data, dict):
        c.add(
            (),
            "the file must be a mapping with backends and routes",
            "see router/config.example.yaml",
        )
        raise ConfigError(c.problems)
    c.keys(data, (), ["backends", "routes", "settings"])
    raw_backends = data.get("backends")
    backends: dict[str, Backend] = {}
    if not isinstance(raw_backends, dict) or not raw_backends:
        c.add(
            ("backends",), "missing or empty", "define at least one backend with a url"
        )
        raw_backends = {}
    for name, spec in raw_backends.items():
        backend = _backend(c, name, spec)
        if backend is not None:
            backends[name] = backend
    refs = {name: backends.get(name) for name in raw_backends}
    raw_routes = data.get("routes")
    routes: list[tuple[int, Route]] = []
    if not isinstance(raw_routes, list) or not raw_routes:
        c.add(
            ("routes",), "missing or empty", "add at least one route (like `path: /**`)"
        )
        raw_routes = []
    settings = _settings(c, data.get("settings"))
    for index, spec in enumerate(raw_routes):
        route = _route(c, index, spec, refs)
        if route is None:
            continue
        if any(p.covers(route.pattern) for p in settings.internal):
            c.add(
                ("routes", index, "path"),
                f"{route.path!r} is an internal path that is never proxied",
                "route a public path, or remove it from settings.internal",
            )
            continue
        routes.append((index, route))
    _overlaps(c, routes)
    if c.problems:
        raise ConfigError(c.problems)
    return RouterConfig(backends, tuple(r for _, r in routes), settings, data)


def load_config(text: str, *, source: str = "<config>") -> RouterConfig:
    data, lines = parse_yaml(text, source)
    return validate(data, lines, source)


def dump_config(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
