"""Config validation names the file, the line, the key and the fix; bad configs load nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler.routing.schema import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[3]
BACKENDS = """\
backends:
  monolith: {url: "http://127.0.0.1:8000"}
  vote: {url: "http://127.0.0.1:8001"}
  safe_vote: {url: "http://127.0.0.1:8003", dry_run: true}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(text, source="routes.yaml")
    return [str(p) for p in info.value.problems]


def test_example_config_is_valid_and_routes_everything_to_the_monolith():
    config = load_config((ROOT / "router/config.example.yaml").read_text())
    assert set(config.backends) == {"monolith", "vote", "choice"}
    for method, path in [
        ("GET", "/api/votes/"),
        ("POST", "/api/questions/"),
        ("GET", "/"),
    ]:
        assert config.match(method, path).to == "monolith"


def test_unknown_backend_names_line_and_fix():
    text = (
        BACKENDS
        + "routes:\n  - path: /**\n    to: monolith\n  - path: /api/**\n    to: vot\n"
    )
    [message] = problems(text)
    assert message.startswith("routes.yaml:9: routes[1].to: unknown backend 'vot'")
    assert "fix: use one of the backends: monolith, safe_vote, vote" in message


def test_percent_out_of_range():
    text = BACKENDS + (
        "routes:\n  - path: /**\n    to: monolith\n"
        "    canary: {to: vote, percent: 120}\n"
    )
    [message] = problems(text)
    assert "routes.yaml:8: routes[0].canary.percent: 120 is out of range" in message
    assert "between 0 and 100" in message


def test_equally_specific_overlapping_routes_are_a_tie():
    text = BACKENDS + (
        "routes:\n"
        "  - {name: a, methods: [GET], path: /api/*/x, to: monolith}\n"
        "  - {name: b, methods: [GET, POST], path: /api/y/*, to: vote}\n"
    )
    [message] = problems(text)
    assert "routes[1].path" in message and "ties with routes[0]" in message


def test_same_pattern_with_disjoint_methods_is_fine():
    text = BACKENDS + (
        "routes:\n"
        "  - {methods: [GET], path: /api/votes/**, to: vote}\n"
        "  - {methods: [POST], path: /api/votes/**, to: monolith}\n"
        "  - {path: /**, to: monolith}\n"
    )
    config = load_config(text)
    assert config.match("GET", "/api/votes/1/").to == "vote"
    assert config.match("POST", "/api/votes/").to == "monolith"
    assert config.match("DELETE", "/api/votes/1/").path == "/**"


def test_most_specific_route_wins():
    text = BACKENDS + (
        "routes:\n"
        "  - {path: /**, to: monolith}\n"
        "  - {path: /api/questions/**, to: vote}\n"
        "  - {path: /api/questions/*/results/, to: safe_vote}\n"
    )
    config = load_config(text)
    assert config.match("GET", "/api/questions/3/results/").to == "safe_vote"
    assert config.match("GET", "/api/questions/3/").to == "vote"


def test_shadowing_unsafe_methods_needs_write_isolation():
    text = BACKENDS + "routes:\n  - path: /**\n    to: monolith\n    shadow: vote\n"
    [message] = problems(text)
    assert "routes.yaml:8: routes[0].shadow" in message
    assert "dry_run: true" in message
    ok = BACKENDS + "routes:\n  - path: /**\n    to: monolith\n    shadow: safe_vote\n"
    assert load_config(ok).routes[0].shadow.to == "safe_vote"
    reads = (
        BACKENDS
        + "routes:\n  - {methods: [GET], path: /**, to: monolith, shadow: vote}\n"
    )
    assert load_config(reads).routes[0].shadow.to == "vote"


def test_broken_yaml_names_the_line():
    [message] = problems(BACKENDS + "routes:\n  - path: [/**\n")
    assert message.startswith("routes.yaml:")
    assert "not valid YAML" in message


def test_internal_paths_cannot_be_routed():
    text = BACKENDS + "routes:\n  - {path: /_strangler/internal/**, to: monolith}\n"
    [message] = problems(text)
    assert "internal path" in message


def test_every_problem_is_reported_at_once():
    text = "backends:\n  Bad Name: {url: ftp://x}\nroutes:\n  - {path: nope, to: x, extra: 1}\n"
    found = problems(text)
    assert len(found) >= 4
    assert any("extra: unknown key" in p for p in found)


def test_a_backend_may_be_reached_on_a_unix_socket():
    config = load_config(
        "backends:\n"
        "  monolith: {url: 'http://monolith:8000', socket: /run/strangler/m.sock}\n"
        "routes:\n  - {path: /**, to: monolith}\n"
    )
    backend = config.backends["monolith"]
    assert backend.socket == "/run/strangler/m.sock"
    assert backend.url == "http://monolith:8000"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("run/m.sock", "is not a Unix socket path"),
        ("/" + "s" * 107, "is not a Unix socket path"),
        (8000, "is not a Unix socket path"),
    ],
)
def test_a_bad_socket_path_names_the_line_and_the_fix(value, why):
    text = (
        f"backends:\n  monolith:\n    url: http://127.0.0.1:8000\n    socket: {value}\n"
        "routes:\n  - {path: /**, to: monolith}\n"
    )
    [message] = problems(text)
    assert message.startswith("routes.yaml:4: backends.monolith.socket:")
    assert why in message and "fix: write an absolute path of at most 107" in message


def test_a_socket_carries_plain_http_only():
    text = (
        "backends:\n  monolith:\n    url: https://example.org\n    socket: /run/m.sock\n"
        "routes:\n  - {path: /**, to: monolith}\n"
    )
    [message] = problems(text)
    assert "backends.monolith.socket: a Unix socket carries plain HTTP only" in message
