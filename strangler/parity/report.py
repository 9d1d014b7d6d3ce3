"""Parity reports: per endpoint requests, matches, mismatches and noise, drilled down to the
fields that differ with sample pairs; rendered for a terminal, as JSON, JUnit XML and HTML.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

import yaml

from strangler.compare import Difference, Exchange
from strangler.compare.rules import DEFAULT_HEADERS
from strangler.parity.calibrate import baseline_noise, propose_rules
from strangler.parity.records import exchange_to_dict
from strangler.parity.results import PairResult, field_of


@dataclass
class FieldStats:
    """One field (``/results/*/choice_text``) and kind that differed, with samples."""

    field: str
    kind: str
    count: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EndpointStats:
    endpoint: str
    requests: int = 0
    matched: int = 0
    mismatched: int = 0
    noise: int = 0
    fields: dict[tuple[str, str], FieldStats] = field(default_factory=dict)
    noise_fields: dict[tuple[str, str, str], int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    passed: bool = True
    reason: str = ""

    @property
    def mismatch_rate(self) -> float:
        return self.mismatched / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "requests": self.requests,
            "matched": self.matched,
            "mismatched": self.mismatched,
            "noise": self.noise,
            "mismatch_rate": round(self.mismatch_rate, 6),
            "passed": self.passed,
            "reason": self.reason,
            "statuses": {str(k): n for k, n in sorted(self.statuses.items())},
            "fields": [
                {
                    "field": f.field,
                    "kind": f.kind,
                    "count": f.count,
                    "samples": f.samples,
                }
                for f in sorted(self.fields.values(), key=lambda f: (-f.count, f.field))
            ],
            "noise_fields": [
                {"field": k[0], "kind": k[1], "source": k[2], "count": n}
                for k, n in sorted(self.noise_fields.items())
            ],
        }


@dataclass
class Report:
    endpoints: dict[str, EndpointStats]
    max_mismatch_rate: float
    min_samples: int
    proposed_rules: dict[str, Any]
    source: str = "replay"

    @property
    def passed(self) -> bool:
        return bool(self.endpoints) and all(e.passed for e in self.endpoints.values())

    def totals(self) -> dict[str, int]:
        stats = self.endpoints.values()
        return {
            "requests": sum(e.requests for e in stats),
            "matched": sum(e.matched for e in stats),
            "mismatched": sum(e.mismatched for e in stats),
            "noise": sum(e.noise for e in stats),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "passed": self.passed,
            "max_mismatch_rate": self.max_mismatch_rate,
            "min_samples": self.min_samples,
            "totals": self.totals(),
            "endpoints": [self.endpoints[k].to_dict() for k in sorted(self.endpoints)],
            "proposed_rules": self.proposed_rules or None,
        }


def _sample(result: PairResult, diff: Difference) -> dict[str, Any]:
    def side(exchange: Exchange | None) -> dict[str, Any] | None:
        return exchange_to_dict(exchange) if exchange is not None else None

    return {
        "index": result.index,
        "method": result.method,
        "target": result.target,
        "route": result.route,
        "difference": diff.to_dict(),
        "primary": side(result.primary),
        "candidate": side(result.candidate),
    }


def build_report(
    results: Iterable[PairResult],
    *,
    max_mismatch_rate: float = 0.0,
    min_samples: int = 1,
    samples_per_field: int = 3,
    headers: tuple[str, ...] = DEFAULT_HEADERS,
    source: str = "replay",
) -> Report:
    """Aggregate results per endpoint; baseline differences become noise and proposals."""
    results = list(results)
    calibrated = baseline_noise(results)
    endpoints: dict[str, EndpointStats] = {}
    for result in results:
        stats = endpoints.setdefault(result.endpoint, EndpointStats(result.endpoint))
        stats.requests += 1
        if result.status is not None:
            stats.statuses[result.status] = stats.statuses.get(result.status, 0) + 1
        known = calibrated.get(result.endpoint, {})
        real = []
        excused = [(d, "rules") for d in result.comparison.noise]
        for diff in result.comparison.differences:
            if (field_of(diff.path), diff.kind) in known:
                excused.append((diff, "baseline"))
            else:
                real.append(diff)
        for diff, why in excused:
            key = (field_of(diff.path), diff.kind, why)
            stats.noise_fields[key] = stats.noise_fields.get(key, 0) + 1
        stats.noise += bool(excused)
        if not real:
            stats.matched += 1
            continue
        stats.mismatched += 1
        for diff in real:
            key = (field_of(diff.path), diff.kind)
            entry = stats.fields.setdefault(key, FieldStats(*key))
            entry.count += 1
            if len(entry.samples) < samples_per_field:
                entry.samples.append(_sample(result, diff))
    for stats in endpoints.values():
        if stats.requests < min_samples:
            stats.passed = False
            stats.reason = (
                f"{stats.requests} samples, fewer than the {min_samples} required"
            )
        elif stats.mismatch_rate > max_mismatch_rate:
            stats.passed = False
            stats.reason = (
                f"mismatch rate {stats.mismatch_rate:.2%} above {max_mismatch_rate:.2%}"
            )
    return Report(
        endpoints=endpoints,
        max_mismatch_rate=max_mismatch_rate,
        min_samples=min_samples,
        proposed_rules=propose_rules(calibrated, headers),
        source=source,
    )


def render_text(report: Report, *, fields_per_endpoint: int = 5) -> str:
    """The terminal summary: one row per endpoint, the top differing fields under it."""
    rows = [
        ("endpoint", "requests", "matched", "mismatched", "noise", "rate", "verdict")
    ]
    details: list[str] = []
    for name in sorted(report.endpoints):
        e = report.endpoints[name]
        verdict = "ok" if e.passed else "FAIL"
        rows.append(
            (
                name,
                str(e.requests),
                str(e.matched),
                str(e.mismatched),
                str(e.noise),
                f"{e.mismatch_rate:.1%}",
                verdict,
            )
        )
        if e.fields or not e.passed:
            details.append(f"{name}: {e.reason or 'mismatches within threshold'}")
            top = sorted(e.fields.values(), key=lambda f: (-f.count, f.field))
            for f in top[:fields_per_endpoint]:
                sample = f.samples[0]["difference"] if f.samples else {}
                details.append(
                    f"  {f.kind:<8} {f.field or '(root)'}  x{f.count}  "
                    f"primary={_short(sample.get('primary'))} "
                    f"candidate={_short(sample.get('candidate'))}"
                )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    totals = report.totals()
    lines.append(
        f"total: {totals['requests']} requests, {totals['matched']} matched, "
        f"{totals['mismatched']} mismatched, {totals['noise']} with noise excused; "
        f"{'PASS' if report.passed else 'FAIL'}"
    )
    if not report.endpoints:
        lines.append("no requests were compared")
    if details:
        lines += ["", *details]
    if report.proposed_rules:
        lines += [
            "",
            "proposed noise rules (from the baseline; review, then add to the plan's parity: section):",
            yaml.safe_dump({"parity": report.proposed_rules}, sort_keys=True).rstrip(),
        ]
    return "\n".join(lines) + "\n"


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"


def render_junit(report: Report) -> str:
    """JUnit XML: one test case per endpoint, failed when the endpoint failed the gate."""
    totals = report.totals()
    suite = ET.Element(
        "testsuite",
        name=f"parity-{report.source}",
        tests=str(len(report.endpoints)),
        failures=str(sum(not e.passed for e in report.endpoints.values())),
        errors="0",
    )
    suite.set("requests", str(totals["requests"]))
    for name in sorted(report.endpoints):
        e = report.endpoints[name]
        case = ET.SubElement(suite, "testcase", classname="parity", name=name)
        if not e.passed:
            failure = ET.SubElement(case, "failure", message=e.reason, type="parity")
            failure.text = "\n".join(
                f"{f.kind} {f.field or '(root)'} x{f.count}"
                for f in sorted(e.fields.values(), key=lambda f: (-f.count, f.field))
            )
        out = ET.SubElement(case, "system-out")
        out.text = (
            f"requests={e.requests} matched={e.matched} mismatched={e.mismatched} "
            f"noise={e.noise}"
        )
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}.FAIL{color:#b00;font-weight:bold}.ok{color:#070}
details{margin:.4em 0 .4em 1em}summary{cursor:pointer}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em}
pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:30em;white-space:pre-wrap}
"""


def _pretty_body(side: dict[str, Any] | None) -> str:
    if side is None:
        return "(no response)"
    body = side.get("body", "")
    with contextlib.suppress(ValueError, TypeError):
        body = json.dumps(json.loads(body), indent=2, sort_keys=True)
    headers = "\n".join(f"{k}: {v}" for k, v in sorted(side.get("headers", {}).items()))
    return f"HTTP {side['status']}\n{headers}\n\n{body}"


def render_html(report: Report) -> str:
    """A static page: endpoint → field → sample pairs side by side."""
    e = html.escape
    totals = report.totals()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>parity report</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Parity report ({e(report.source)}): "
        f"<span class='{'ok' if report.passed else 'FAIL'}'>"
        f"{'PASS' if report.passed else 'FAIL'}</span></h1>",
        f"<p>{totals['requests']} requests, {totals['matched']} matched, "
        f"{totals['mismatched']} mismatched, {totals['noise']} with noise excused. "
        f"Threshold {report.max_mismatch_rate:.2%}, at least {report.min_samples} samples.</p>",
        "<table><tr><th>endpoint</th><th>requests</th><th>matched</th><th>mismatched</th>"
        "<th>noise</th><th>rate</th><th>verdict</th></tr>",
    ]
    for name in sorted(report.endpoints):
        s = report.endpoints[name]
        verdict = "ok" if s.passed else "FAIL"
        parts.append(
            f"<tr><td><a href='#{e(_anchor(name))}'>{e(name)}</a></td><td>{s.requests}</td>"
            f"<td>{s.matched}</td><td>{s.mismatched}</td><td>{s.noise}</td>"
            f"<td>{s.mismatch_rate:.1%}</td><td class='{verdict}'>{verdict}</td></tr>"
        )
    parts.append("</table>")
    for name in sorted(report.endpoints):
        s = report.endpoints[name]
        parts.append(f"<h2 id='{e(_anchor(name))}'>{e(name)}</h2>")
        if s.reason:
            parts.append(f"<p class='FAIL'>{e(s.reason)}</p>")
        for f in sorted(s.fields.values(), key=lambda f: (-f.count, f.field)):
            parts.append(
                f"<details><summary><b>{e(f.kind)}</b> <code>{e(f.field or '(root)')}</code>"
                f" &times;{f.count}</summary>"
            )
            for sample in f.samples:
                diff = sample["difference"]
                parts.append(
                    f"<details><summary>#{sample['index']} {e(sample['method'])} "
                    f"<code>{e(sample['target'])}</code>: primary "
                    f"<code>{e(json.dumps(diff['primary']))[:200]}</code> vs candidate "
                    f"<code>{e(json.dumps(diff['candidate']))[:200]}</code></summary>"
                    "<div class='pair'>"
                    f"<div><h4>primary</h4><pre>{e(_pretty_body(sample['primary']))}</pre></div>"
                    f"<div><h4>candidate</h4><pre>{e(_pretty_body(sample['candidate']))}</pre></div>"
                    "</div></details>"
                )
            parts.append("</details>")
        if s.noise_fields:
            parts.append(
                "<p>Noise excused: "
                + ", ".join(
                    f"<code>{e(k[0] or '(root)')}</code> {e(k[1])} by {e(k[2])} &times;{n}"
                    for k, n in sorted(s.noise_fields.items())
                )
                + "</p>"
            )
    if report.proposed_rules:
        parts.append(
            "<h2>Proposed noise rules</h2><pre>"
            + e(yaml.safe_dump({"parity": report.proposed_rules}, sort_keys=True))
            + "</pre>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _anchor(name: str) -> str:
    return "ep-" + "".join(c if c.isalnum() else "-" for c in name)
