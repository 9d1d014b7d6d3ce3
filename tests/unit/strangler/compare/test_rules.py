"""load_rules(): accepted forms, and errors that name the source, the key and the fix."""

from __future__ import annotations

import pytest

from strangler.compare import RulesError, RuleSet, load_rules


def test_none_and_empty_give_default_rules():
    for source in (None, {}, {"parity": None}):
        rules = load_rules(source)
        assert isinstance(rules, RuleSet)
        assert rules.headers == ("content-type", "location")


def test_dict_with_parity_key_is_unwrapped():
    rules = load_rules(
        {"parity": {"headers": ["content-type"]}, "service": "vote"} | {}
    )
    assert rules.headers == ("content-type",)


def test_yaml_file_with_parity_section(tmp_path):
    plan = tmp_path / "vote.yaml"
    plan.write_text(
        "service: vote\nparity:\n  scrub: [password]\n  endpoints:\n"
        "    'GET /api/votes/':\n      unordered: {/results: id}\n"
    )
    rules = load_rules(plan)
    assert rules.scrub == ("password",)
    assert rules.for_endpoint("GET", "/api/votes/").unordered_key(["results"]) == (
        True,
        "id",
    )
    assert rules.source == str(plan)


def test_file_without_parity_section_is_refused(tmp_path):
    plan = tmp_path / "vote.yaml"
    plan.write_text("service: vote\n")
    with pytest.raises(RulesError, match=r"vote.yaml: no 'parity:' section"):
        load_rules(plan)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("parity:\n  headers: [a\n  x: 1\n")
    with pytest.raises(RulesError, match=r"bad.yaml: line \d+ is not valid YAML"):
        load_rules(bad)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"endpoint": {}}, r"parity\.endpoint: unknown key"),
        (
            {"headers": "content-type"},
            r"parity\.headers: must be a list of header names",
        ),
        ({"patterns": {"x": "("}}, r"parity\.patterns\.x: invalid regular expression"),
        ({"defaults": {"ignroe": []}}, r"parity\.defaults\.ignroe: unknown rule"),
        (
            {"defaults": {"ignore": ["results/*/id"]}},
            r"parity\.defaults\.ignore\[0\]: 'results/\*/id' is not a JSON pointer",
        ),
        (
            {"defaults": {"match": {"/a": "timestamp"}}},
            r"parity\.defaults\.match\./a: unknown pattern 'timestamp'",
        ),
        (
            {"defaults": {"unordered": {"/a": 3}}},
            r"parity\.defaults\.unordered\./a: must be the key field's name",
        ),
        (
            {"defaults": {"tolerance": {"/a": "lots"}}},
            r"parity\.defaults\.tolerance\./a: 'lots' must be a non-negative number",
        ),
        (
            {"defaults": {"tolerance": {"/a": -1}}},
            r"tolerance\./a: -1 must be a non-negative",
        ),
        (
            {"defaults": {"allow_status": [200, 201]}},
            r"parity\.defaults\.allow_status: must be a list of \[primary, candidate\]",
        ),
        (
            {"endpoints": {"FETCH /api/": {}}},
            r"parity\.endpoints\.'FETCH /api/': unknown method FETCH",
        ),
        (
            {"endpoints": {"GET api/": {}}},
            r"parity\.endpoints\.'GET api/': path 'api/' must start with '/'",
        ),
        (
            {"endpoints": {"GET /api/**/x": {}}},
            r"'\*\*' may only be the last path segment",
        ),
        (
            {"endpoints": {"GET /api/": "ignore"}},
            r"parity\.endpoints\.'GET /api/': must be a mapping",
        ),
        (["a"], r"parity: must be a mapping"),
    ],
)
def test_bad_rules_name_the_key_and_the_fix(section, message):
    with pytest.raises(RulesError, match=message):
        load_rules({"parity": section})


def test_file_errors_name_the_file(tmp_path):
    plan = tmp_path / "vote.yaml"
    plan.write_text("parity:\n  defaults:\n    ignore: [oops]\n")
    with pytest.raises(RulesError, match=r"vote\.yaml: parity\.defaults\.ignore\[0\]"):
        load_rules(plan)


def test_more_specific_block_overrides_same_pointer_and_header_list():
    rules = load_rules(
        {
            "headers": ["content-type", "location"],
            "defaults": {"unordered": {"/results": "id"}},
            "endpoints": {
                "GET /api/**": {"headers": ["location"]},
                "GET /api/votes/": {"unordered": {"/results": "pk"}, "headers": []},
            },
        }
    )
    merged = rules.for_endpoint("GET", "/api/votes/")
    assert merged.unordered_key(["results"]) == (True, "pk")
    assert merged.headers == ()
    assert rules.for_endpoint("GET", "/api/choices/").headers == ("location",)


def test_to_dict_reloads_to_equivalent_rules():
    section = {
        "patterns": {"t": "T-[0-9]+"},
        "defaults": {"ignore": ["/x"]},
        "endpoints": {
            "GET /api/votes/": {"match": {"/t": "t"}, "allow_status": [[200, 201]]}
        },
    }
    again = load_rules(load_rules(section).to_dict())
    assert again.to_dict() == load_rules(section).to_dict()
    assert again.for_endpoint("GET", "/api/votes/").allow_status == {(200, 201)}
