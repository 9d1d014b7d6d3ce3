"""Export a router config as an nginx config, for teams that want nginx at the edge.

Reproduces per-route backends (``to``), sticky canaries (``split_clients``) and fallback for
safe methods (a ``backup`` server plus ``proxy_next_upstream``), and says in the file which
features nginx cannot reproduce.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from strangler.routing.schema import (
    KNOWN_METHODS,
    SAFE_METHODS,
    Backend,
    Route,
    RouterConfig,
)

CANNOT = """\
# What nginx cannot do, so this file leaves out:
#   - shadow with comparison: nginx `mirror` throws the mirrored answer away and cannot send
#     unsafe requests as a rolled-back dry run, so shadowed routes are served without shadow;
#   - the router's canary buckets: split_clients hashes with MurmurHash2, not the router's
#     sha256 buckets, so users land on different sides than under the router (still sticky);
#     key `user` uses the whole Authorization header, because nginx cannot read a JWT's sub;
#   - the circuit breaker's half-open probe (approximated by max_fails/fail_timeout);
#   - the X-Strangler-Backend operator override, the /_strangler/ status page, shadow and
#     parity metrics, and live versioned flips (re-export and reload nginx instead);
#   - a route whose pattern overlaps a more specific one of equal rank for other methods
#     is resolved per location, which can differ from the router for such edge cases.
"""


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _upstream_name(backend: str, fallback: str | None = None) -> str:
    name = f"strangler_{_ident(backend)}"
    return f"{name}__fb_{_ident(fallback)}" if fallback else name


def _server(backend: Backend) -> str:
    if backend.socket is not None:
        return f"unix:{backend.socket}"
    parts = urlsplit(backend.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def _key_variable(key: str) -> str:
    if key == "user":
        return "$http_authorization"
    kind, _, name = key.partition(":")
    if kind == "header":
        return "$http_" + name.lower().replace("-", "_")
    return "$cookie_" + _ident(name)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def export_nginx(config: RouterConfig, *, version: int, listen: str = "8080") -> str:
    breaker = (config.settings.breaker_failures, config.settings.breaker_reset_seconds)
    upstreams: dict[str, list[str]] = {}

    def upstream(backend: str, fallback: str | None) -> str:
        name = _upstream_name(backend, fallback)
        if name not in upstreams:
            main = config.backends[backend]
            lines = [
                f"server {_server(main)} max_fails={breaker[0]} "
                f"fail_timeout={breaker[1]:g}s;"
            ]
            if fallback:
                lines.append(f"server {_server(config.backends[fallback])} backup;")
            lines.append("keepalive 64;")
            upstreams[name] = lines
        return name

    split_blocks: list[str] = []
    route_index = {route.name: i for i, route in enumerate(config.routes)}

    def target(route: Route, safe: bool) -> str:
        fallback = route.fallback if safe else None
        primary = upstream(route.to, fallback if fallback != route.to else None)
        canary = route.canary
        if canary is None or canary.percent <= 0:
            return primary
        second = upstream(canary.to, fallback if fallback != canary.to else None)
        variable = (
            f"$strangler_canary_{route_index[route.name]}_{'safe' if safe else 'all'}"
        )
        if not any(variable + " " in b for b in split_blocks):
            key = _key_variable(canary.key)
            share = "*" if canary.percent >= 100 else f"{canary.percent:g}%"
            body = [f"    {share} {second};"]
            if canary.percent < 100:
                body.append(f"    * {primary};")
            split_blocks.append(
                f'split_clients "{key}:{_ident(route.name)}" {variable} {{\n'
                + "\n".join(body)
                + "\n}"
            )
        return variable

    patterns = sorted(
        {r.pattern.text: r.pattern for r in config.routes}.values(),
        key=lambda p: p.specificity,
        reverse=True,
    )
    locations: list[str] = []
    for pattern in patterns:
        by_choice: dict[tuple[str, str], list[str]] = {}
        for method in sorted(KNOWN_METHODS):
            candidates = [
                r
                for r in config.routes
                if r.allows(method) and r.pattern.covers(pattern)
            ]
            if not candidates:
                continue
            best = max(candidates, key=lambda r: r.specificity)
            choice = (best.name, target(best, method in SAFE_METHODS))
            by_choice.setdefault(choice, []).append(method)
        lines = [f"    location ~ {_quote(pattern.regex())} {{"]
        lines.append('        set $strangler_route "";')
        lines.append('        set $strangler_upstream "";')
        for (name, upstream_var), methods in by_choice.items():
            lines.append(f"        if ($request_method ~ ^({'|'.join(methods)})$) {{")
            lines.append(f"            set $strangler_route {_quote(name)};")
            lines.append(f"            set $strangler_upstream {upstream_var};")
            lines.append("        }")
        lines.append('        if ($strangler_upstream = "") {')
        lines.append(
            '            return 404 \'{"error": {"code": "no_route", '
            '"message": "No route for this method and path."}}\';'
        )
        lines.append("        }")
        lines.append("        proxy_pass http://$strangler_upstream;")
        lines.append(
            '        add_header X-Strangler-Route "$strangler_route; '
            f'backend=$upstream_addr; version={version}" always;'
        )
        lines.append("    }")
        locations.append("\n".join(lines))

    internal = "\n".join(
        f"    location ~ {_quote(p.regex())} {{\n        return 404;\n    }}"
        for p in config.settings.internal
    )
    upstream_text = "\n".join(
        f"upstream {name} {{\n" + "\n".join(f"    {line}" for line in lines) + "\n}"
        for name, lines in upstreams.items()
    )
    split_text = "\n".join(split_blocks)
    read_timeout = max(b.read_timeout for b in config.backends.values())
    connect_timeout = max(b.connect_timeout for b in config.backends.values())
    indent = "    "
    return f"""\
# Generated by `strangler route export-nginx` from router config version {version}.
# Reproduces: each route's backend (to), sticky canaries (split_clients) and fallback for
# safe methods (backup server + proxy_next_upstream); unsafe methods are never retried.
{CANNOT}
worker_processes auto;
pid logs/nginx.pid;
events {{
    worker_connections 4096;
}}

http {{
    access_log logs/access.log;
    error_log logs/error.log warn;
    client_max_body_size {config.settings.max_body_bytes};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Strangler-Dry-Run "";
    proxy_set_header X-Strangler-Router-Token "";
    proxy_connect_timeout {connect_timeout:g}s;
    proxy_read_timeout {read_timeout:g}s;
    proxy_next_upstream error timeout http_500 http_502 http_503 http_504;
    proxy_next_upstream_tries 2;

{_indent(upstream_text, indent)}

{_indent(split_text, indent)}

    server {{
        listen {listen};
        default_type application/json;
{_indent(internal, indent)}
{_indent(chr(10).join(locations), indent)}
    }}
}}
"""


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())
