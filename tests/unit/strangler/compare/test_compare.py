"""compare(): every difference kind, and every rule kind excusing only what it should."""

from __future__ import annotations

import json
from typing import Any

import pytest

from strangler.compare import Comparison, Difference, Exchange, compare, load_rules

JSON = {"Content-Type": "application/json"}


def ex(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(status=status, headers=headers or dict(JSON), body=raw)


def run(
    primary: Exchange,
    candidate: Exchange,
    rules=None,
    *,
    method="GET",
    path="/api/votes/",
) -> Comparison:
    return compare(
        primary,
        candidate,
        method=method,
        path=path,
        rules=load_rules(rules) if rules is not None else None,
    )


def kinds(result: Comparison) -> list[tuple[str, str]]:
    return [(d.path, d.kind) for d in result.differences]


def test_identical_answers_match_with_no_noise():
    body = {"count": 1, "results": [{"id": 1, "choice": 2}]}
    result = run(ex(body), ex(body))
    assert result.matched
    assert result.differences == [] and result.noise == []


def test_status_difference_is_reported():
    result = run(ex({"a": 1}, 200), ex({"a": 1}, 201))
    assert kinds(result) == [("status", "status")]
    assert (
        result.differences[0].primary == 200 and result.differences[0].candidate == 201
    )


def test_body_rules_cannot_hide_a_status_difference():
    rules = {"defaults": {"ignore": ["", "/**"], "match": {"/**": "any"}}}
    result = run(ex({"a": 1}, 200), ex({"a": 2}, 404), rules)
    assert ("status", "status") in kinds(result)
    assert not result.matched


def test_allow_status_pair_moves_status_difference_to_noise():
    rules = {"endpoints": {"GET /api/votes/": {"allow_status": [[200, 201]]}}}
    result = run(ex({}, 200), ex({}, 201), rules)
    assert result.matched
    assert [(d.path, d.kind) for d in result.noise] == [("status", "status")]
    # The reverse pair is not allowed.
    assert not run(ex({}, 201), ex({}, 200), rules).matched


def test_allowlisted_header_difference_and_unlisted_header_ignored():
    primary = ex({}, headers={"Content-Type": "application/json", "X-Request-ID": "a"})
    candidate = ex({}, headers={"content-type": "text/html", "X-Request-ID": "b"})
    assert kinds(run(primary, candidate)) == [("header:content-type", "header")]


def test_header_present_on_one_side_only_is_a_difference():
    primary = ex({}, headers={**JSON, "Location": "/api/votes/1/"})
    result = run(primary, ex({}))
    assert kinds(result) == [("header:location", "header")]
    assert result.differences[0].candidate is None


def test_header_allowlist_is_configurable_globally_and_per_endpoint():
    primary = ex({}, headers={**JSON, "X-Version": "1"})
    candidate = ex({}, headers={**JSON, "X-Version": "2"})
    assert run(primary, candidate).matched
    assert kinds(run(primary, candidate, {"headers": ["x-version"]})) == [
        ("header:x-version", "header")
    ]
    per_endpoint = {
        "headers": ["x-version"],
        "endpoints": {"GET /api/votes/": {"headers": []}},
    }
    assert run(primary, candidate, per_endpoint).matched


def test_value_difference_has_json_pointer():
    result = run(
        ex({"results": [{"id": 1, "n": 1}]}), ex({"results": [{"id": 1, "n": 2}]})
    )
    assert kinds(result) == [("/results/0/n", "value")]


def test_missing_and_extra_fields():
    result = run(ex({"id": 1, "choice_text": "a"}), ex({"id": 1, "text": "a"}))
    assert sorted(kinds(result)) == [("/choice_text", "missing"), ("/text", "extra")]


def test_type_difference():
    result = run(ex({"id": 1}), ex({"id": "1"}))
    assert kinds(result) == [("/id", "type")]
    assert kinds(run(ex({"ok": True}), ex({"ok": 1}))) == [("/ok", "type")]


def test_int_and_float_of_equal_value_are_equal():
    assert run(ex({"n": 1}), ex({"n": 1.0})).matched


def test_reordered_list_is_one_order_difference():
    items = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    result = run(ex({"results": items}), ex({"results": list(reversed(items))}))
    assert kinds(result) == [("/results", "order")]
    assert result.differences[0].primary == ["1", "2", "3"]


def test_reordered_scalars_are_an_order_difference():
    assert kinds(run(ex([1, 2, 3]), ex([3, 2, 1]))) == [("", "order")]


def test_shorter_list_reports_missing_items():
    items = [{"id": 1}, {"id": 2}, {"id": 3}]
    result = run(ex({"results": items}), ex({"results": items[:1]}))
    assert kinds(result) == [("/results/1", "missing"), ("/results/2", "missing")]


def test_longer_list_reports_extra_items():
    result = run(ex([{"id": 1}]), ex([{"id": 1}, {"id": 2}]))
    assert kinds(result) == [("/1", "extra")]


def test_non_json_bodies_compared_as_bytes():
    html = {"Content-Type": "text/html"}
    same = run(ex(b"<p>hi</p>", headers=html), ex(b"<p>hi</p>", headers=html))
    assert same.matched
    result = run(ex(b"<p>hi</p>", headers=html), ex(b"<p>ho</p>", headers=html))
    assert kinds(result) == [("body", "body")]
    assert result.to_dict()["differences"][0]["candidate"] == "<p>ho</p>"


def test_json_against_non_json_is_a_body_difference():
    result = run(
        ex({"a": 1}),
        ex(b"Internal error", headers={"Content-Type": "application/json"}),
    )
    assert kinds(result) == [("body", "body")]


def test_empty_bodies_match():
    assert run(ex(b"", 204), ex(b"", 204)).matched


def test_ignore_glob_moves_difference_to_noise():
    rules = {"endpoints": {"GET /api/votes/": {"ignore": ["/results/*/created_at"]}}}
    primary = ex(
        {"results": [{"id": 1, "created_at": "x"}, {"id": 2, "created_at": "y"}]}
    )
    candidate = ex(
        {"results": [{"id": 1, "created_at": "p"}, {"id": 2, "created_at": "q"}]}
    )
    result = run(primary, candidate, rules)
    assert result.matched
    assert [d.path for d in result.noise] == [
        "/results/0/created_at",
        "/results/1/created_at",
    ]


def test_ignore_does_not_hide_other_fields():
    rules = {"defaults": {"ignore": ["/results/*/created_at"]}}
    result = run(
        ex({"results": [{"id": 1, "created_at": "x", "n": 1}]}),
        ex({"results": [{"id": 1, "created_at": "y", "n": 2}]}),
        rules,
    )
    assert kinds(result) == [("/results/0/n", "value")]


def test_double_star_glob_matches_any_depth():
    rules = {"defaults": {"ignore": ["/**/request_id"]}}
    result = run(
        ex({"request_id": 1, "a": {"b": {"request_id": 2}}}),
        ex({"request_id": 3, "a": {"b": {"request_id": 4}}}),
        rules,
    )
    assert result.matched and len(result.noise) == 2


def test_ignored_field_missing_on_one_side_is_noise():
    rules = {"defaults": {"ignore": ["/debug"]}}
    result = run(ex({"a": 1, "debug": "x"}), ex({"a": 1}), rules)
    assert result.matched
    assert [(d.path, d.kind) for d in result.noise] == [("/debug", "missing")]


def test_timestamp_pattern_equal_if_both_match():
    rules = {"defaults": {"match": {"/**/created_at": "iso8601"}}}
    primary = ex({"created_at": "2026-11-28T00:00:00.123456Z"})
    candidate = ex({"created_at": "2026-11-29T10:11:12Z"})
    result = run(primary, candidate, rules)
    assert result.matched and len(result.noise) == 1
    broken = run(primary, ex({"created_at": "yesterday"}), rules)
    assert kinds(broken) == [("/created_at", "value")]


def test_uuid_and_id_patterns():
    rules = {"defaults": {"match": {"/token": "uuid", "/id": "id"}}}
    primary = ex({"token": "0b6f1c1e-7d9a-4b8e-9c61-1d2f3a4b5c6d", "id": 10})
    candidate = ex({"token": "9f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "id": 11})
    assert run(primary, candidate, rules).matched
    assert kinds(run(primary, ex({"token": "nope", "id": 11}), rules)) == [
        ("/token", "value")
    ]
    assert kinds(
        run(
            primary,
            ex({"token": "0b6f1c1e-7d9a-4b8e-9c61-1d2f3a4b5c6d", "id": -1}),
            rules,
        )
    ) == [("/id", "value")]


def test_custom_pattern():
    rules = {
        "patterns": {"ticket": "T-[0-9]+"},
        "defaults": {"match": {"/t": "ticket"}},
    }
    assert run(ex({"t": "T-1"}), ex({"t": "T-22"}), rules).matched
    assert not run(ex({"t": "T-1"}), ex({"t": "X-22"}), rules).matched


def test_unordered_list_keyed_by_field_is_noise_not_order():
    rules = {"endpoints": {"GET /api/votes/": {"unordered": {"/results": "id"}}}}
    items = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    result = run(ex({"results": items}), ex({"results": list(reversed(items))}), rules)
    assert result.matched
    assert [(d.path, d.kind) for d in result.noise] == [("/results", "order")]


def test_unordered_list_still_reports_changed_missing_and_extra_items():
    rules = {"defaults": {"unordered": {"/results": "id"}}}
    primary = ex({"results": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]})
    candidate = ex({"results": [{"id": 3, "v": "c"}, {"id": 1, "v": "z"}]})
    result = run(primary, candidate, rules)
    assert sorted(kinds(result)) == [
        ("/results/0", "extra"),
        ("/results/0/v", "value"),
        ("/results/1", "missing"),
    ]


def test_unordered_scalars_by_whole_item_with_duplicates():
    rules = {"defaults": {"unordered": {"/tags": None}}}
    assert run(
        ex({"tags": ["a", "a", "b"]}), ex({"tags": ["b", "a", "a"]}), rules
    ).matched
    result = run(ex({"tags": ["a", "a", "b"]}), ex({"tags": ["b", "a", "c"]}), rules)
    assert sorted(kinds(result)) == [("/tags/1", "missing"), ("/tags/2", "extra")]


def test_numeric_tolerance_absolute_and_relative():
    rules = {"defaults": {"tolerance": {"/score": 0.5, "/share": "1%"}}}
    assert run(
        ex({"score": 10.0, "share": 100}), ex({"score": 10.4, "share": 100.9}), rules
    ).matched
    result = run(
        ex({"score": 10.0, "share": 100}), ex({"score": 10.6, "share": 102}), rules
    )
    assert sorted(kinds(result)) == [("/score", "value"), ("/share", "value")]


def test_tolerance_does_not_apply_to_strings():
    rules = {"defaults": {"tolerance": {"/n": 5}}}
    assert kinds(run(ex({"n": "1"}), ex({"n": "2"}), rules)) == [("/n", "value")]


def test_endpoint_name_from_most_specific_rule_pattern():
    rules = load_rules({"endpoints": {"GET /api/**": {}, "GET /api/votes/{id}/": {}}})
    result = compare(
        ex({}), ex({}), method="get", path="/api/votes/12/?x=1", rules=rules
    )
    assert result.endpoint == "GET /api/votes/{id}/"
    other = compare(ex({}), ex({}), method="GET", path="/api/choices/", rules=rules)
    assert other.endpoint == "GET /api/**"


def test_endpoint_name_without_rules_normalises_numeric_segments():
    result = compare(ex({}), ex({}), method="delete", path="/api/votes/12/?page=2")
    assert result.endpoint == "DELETE /api/votes/{id}/"


def test_endpoint_rules_apply_only_to_their_method_and_path():
    rules = {"endpoints": {"POST /api/votes/": {"ignore": ["/id"]}}}
    assert run(ex({"id": 1}), ex({"id": 2}), rules, method="POST").matched
    assert not run(ex({"id": 1}), ex({"id": 2}), rules, method="GET").matched
    assert not run(
        ex({"id": 1}), ex({"id": 2}), rules, method="POST", path="/api/choices/"
    ).matched


def test_to_dict_round_trips():
    result = run(
        ex({"a": 1, "b": 2}), ex({"a": 2}, 201), {"defaults": {"ignore": ["/b"]}}
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["matched"] is False
    assert {
        "path": "status",
        "kind": "status",
        "primary": 200,
        "candidate": 201,
    } in data["differences"]
    again = Comparison.from_dict(data)
    assert again.differences == result.differences and again.noise == result.noise


def test_difference_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown difference kind"):
        Difference("/a", "weird", 1, 2)


def test_pointer_escapes_slash_and_tilde_in_keys():
    result = run(ex({"a/b": 1, "c~d": 1}), ex({"a/b": 2, "c~d": 2}))
    assert sorted(d.path for d in result.differences) == ["/a~1b", "/c~0d"]


def test_reordered_items_with_a_changed_field_report_order_and_value():
    primary = ex([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    candidate = ex([{"id": 2, "v": "b"}, {"id": 1, "v": "changed"}])
    assert kinds(run(primary, candidate)) == [("", "order"), ("/0/v", "value")]


def test_true_is_not_one_inside_containers():
    assert kinds(run(ex([True]), ex([1]))) == [("/0", "type")]
