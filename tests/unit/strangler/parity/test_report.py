"""Reports: per-endpoint verdicts, baseline calibration and proposed rules, renderers."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import yaml

from strangler.compare import Exchange, compare, load_rules
from strangler.parity.report import (
    build_report,
    render_html,
    render_json,
    render_junit,
    render_text,
)
from strangler.parity.results import PairResult, field_of

JSON = {"Content-Type": "application/json"}


def ex(body, status=200) -> Exchange:
    return Exchange(status, JSON, json.dumps(body).encode())


def pair(
    index, path, primary, candidate, baseline=None, method="GET", rules=None
) -> PairResult:
    rules = load_rules(rules)
    result = PairResult(
        index=index,
        method=method,
        target=path,
        comparison=compare(primary, candidate, method=method, path=path, rules=rules),
        primary=primary,
        candidate=candidate,
    )
    if baseline is not None:
        result.baseline = compare(
            primary, baseline, method=method, path=path, rules=rules
        )
    return result


def test_field_of_generalises_indexes():
    assert field_of("/results/3/created_at") == "/results/*/created_at"
    assert field_of("/results/12") == "/results/*"
    assert field_of("status") == "status"


def test_counts_and_threshold_per_endpoint():
    same = {"id": 1, "n": 1}
    results = [pair(i, f"/api/votes/{i}/", ex(same), ex(same)) for i in range(1, 10)]
    results.append(pair(10, "/api/votes/10/", ex(same), ex({"id": 1, "n": 2})))
    results.append(pair(11, "/api/choices/", ex([]), ex([])))
    strict = build_report(results)
    votes = strict.endpoints["GET /api/votes/{id}/"]
    assert (votes.requests, votes.matched, votes.mismatched) == (10, 9, 1)
    assert not strict.passed and "mismatch rate 10.00% above 0.00%" in votes.reason
    assert strict.endpoints["GET /api/choices/"].passed
    [field] = votes.fields.values()
    assert (field.field, field.kind, field.count) == ("/n", "value", 1)
    assert field.samples[0]["target"] == "/api/votes/10/"
    assert build_report(results, max_mismatch_rate=0.1).passed


def test_too_few_samples_fails():
    results = [pair(0, "/api/choices/", ex([]), ex([]))]
    report = build_report(results, min_samples=5)
    assert not report.passed
    assert (
        "1 samples, fewer than the 5 required"
        in report.endpoints["GET /api/choices/"].reason
    )
    assert not build_report([]).passed


def test_rule_noise_is_counted_but_not_a_mismatch():
    rules = {"defaults": {"match": {"/created_at": "iso8601"}}}
    results = [
        pair(
            0,
            "/api/votes/1/",
            ex({"created_at": "2026-01-01T00:00:00Z"}),
            ex({"created_at": "2026-01-02T00:00:00Z"}),
            rules=rules,
        )
    ]
    report = build_report(results)
    stats = report.endpoints["GET /api/votes/{id}/"]
    assert report.passed and stats.noise == 1
    assert stats.noise_fields == {("/created_at", "value", "rules"): 1}


def test_baseline_differences_become_noise_and_proposed_rules():
    def vote(i, vote_id, stamp, extra=None):
        return {"id": vote_id, "created_at": stamp, **(extra or {})}

    results = []
    for i in range(3):
        primary = ex({"results": [vote(i, 10 + i, f"2026-01-0{i + 1}T00:00:00Z")]})
        baseline = ex({"results": [vote(i, 20 + i, f"2026-02-0{i + 1}T00:00:00Z")]})
        candidate = ex(
            {
                "results": [
                    vote(i, 30 + i, f"2026-03-0{i + 1}T00:00:00Z", {"bad": i == 2})
                ]
            }
        )
        results.append(pair(i, "/api/votes/", primary, candidate, baseline))
    report = build_report(results)
    stats = report.endpoints["GET /api/votes/"]
    # id and created_at differ on the baseline too: noise; the extra field does not.
    assert (stats.matched, stats.mismatched) == (0, 3)
    assert set(stats.fields) == {("/results/*/bad", "extra")}
    assert stats.noise_fields[("/results/*/id", "value", "baseline")] == 3
    proposed = report.proposed_rules["endpoints"]["GET /api/votes/"]
    assert proposed["match"] == {
        "/results/*/created_at": "iso8601",
        "/results/*/id": "id",
    }
    # The proposal is a valid rules section that excuses the same noise.
    rules = load_rules(report.proposed_rules)
    again = compare(
        results[0].primary,
        results[0].candidate,
        method="GET",
        path="/api/votes/",
        rules=rules,
    )
    assert [(d.path, d.kind) for d in again.differences] == [
        ("/results/0/bad", "extra")
    ]


def test_baseline_proposes_ignore_unordered_and_status():
    primary = ex({"tags": [{"id": 1}, {"id": 2}], "debug": "a"}, 200)
    baseline = ex({"tags": [{"id": 2}, {"id": 1}], "debug": "b"}, 201)
    report = build_report([pair(0, "/x/", primary, primary, baseline)])
    block = report.proposed_rules["endpoints"]["GET /x/"]
    assert block == {
        "allow_status": [[200, 201]],
        "ignore": ["/debug"],
        "unordered": {"/tags": "id"},
    }


def _sample_report():
    results = [
        pair(0, "/api/votes/?page=2", ex({"count": 3}), ex({"error": "<b>x</b>"}, 404)),
        pair(1, "/api/votes/1/", ex({"id": 1}), ex({"id": 1})),
    ]
    return build_report(results)


def test_text_summary_names_endpoint_field_and_verdict():
    text = render_text(_sample_report())
    assert "GET /api/votes/" in text and "FAIL" in text
    assert "status   status  x1  primary=200 candidate=404" in text
    assert "total: 2 requests, 1 matched, 1 mismatched" in text


def test_json_report_is_machine_readable():
    data = json.loads(render_json(_sample_report()))
    assert data["passed"] is False and data["totals"]["mismatched"] == 1
    [votes] = [e for e in data["endpoints"] if e["endpoint"] == "GET /api/votes/"]
    kinds = {(f["field"], f["kind"]) for f in votes["fields"]}
    assert {("status", "status"), ("/count", "missing"), ("/error", "extra")} <= kinds


def test_junit_has_a_failed_case_per_failing_endpoint():
    root = ET.fromstring(render_junit(_sample_report()))  # noqa: S314 - our own output
    assert root.get("tests") == "2" and root.get("failures") == "1"
    failed = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["GET /api/votes/"]
    assert "status status x1" in failed[0].find("failure").text


def test_html_drills_down_to_escaped_side_by_side_samples():
    page = render_html(_sample_report())
    assert page.count("<div class='pair'>") == 3  # status, /count and /error samples
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "HTTP 404" in page and "HTTP 200" in page


def test_proposed_rules_printed_as_yaml_section():
    primary, baseline = ex({"debug": "a"}), ex({"debug": "b"})
    text = render_text(build_report([pair(0, "/x/", primary, primary, baseline)]))
    section = yaml.safe_load(text.split("add to the plan's parity: section):\n", 1)[1])
    assert section == {"parity": {"endpoints": {"GET /x/": {"ignore": ["/debug"]}}}}


def test_report_counts_the_primary_statuses_of_each_endpoint_across_a_state_round_trip():
    results = [
        pair(0, "/api/votes/", ex({"count": 0}), ex({"count": 0})),
        pair(1, "/api/votes/?page=9", ex({}, 404), ex({}, 404)),
        pair(2, "/api/votes/?page=abc", ex({}, 404), ex({}, 404)),
    ]
    reloaded = [
        PairResult.from_dict(json.loads(json.dumps(r.to_dict()))) for r in results
    ]
    for source in (results, reloaded):
        [stats] = build_report(source).to_dict()["endpoints"]
        assert stats["statuses"] == {"200": 1, "404": 2}
