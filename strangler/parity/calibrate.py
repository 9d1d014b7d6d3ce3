"""Baseline calibration, the way Diffy does it: a difference that also appears between the
primary and a second copy of the primary (the baseline) is noise, not a regression, and
becomes a proposed rule.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from strangler.compare import Difference
from strangler.compare.rules import BUILTIN_PATTERNS, DEFAULT_HEADERS
from strangler.parity.results import PairResult, field_of

NoiseKey = tuple[str, str]  # (field, kind)
# Patterns tried, most specific first, when proposing a rule for a value that changes.
_PROPOSABLE = [
    (name, re.compile(BUILTIN_PATTERNS[name])) for name in ("uuid", "iso8601", "id")
]


def baseline_noise(
    results: Iterable[PairResult],
) -> dict[str, dict[NoiseKey, list[Difference]]]:
    """Per endpoint, each (field, kind) that differed between primary and baseline."""
    found: dict[str, dict[NoiseKey, list[Difference]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for result in results:
        if result.baseline is None:
            continue
        for diff in result.baseline.differences:
            found[result.endpoint][(field_of(diff.path), diff.kind)].append(diff)
    return {endpoint: dict(keys) for endpoint, keys in found.items()}


def _common_pattern(samples: list[Difference]) -> str | None:
    values = [v for d in samples for v in (d.primary, d.candidate)]
    for name, regex in _PROPOSABLE:
        if all(
            isinstance(v, str | int)
            and not isinstance(v, bool)
            and regex.fullmatch(str(v))
            for v in values
        ):
            return name
    return None


def propose_rules(
    noise: dict[str, dict[NoiseKey, list[Difference]]],
    headers: tuple[str, ...] = DEFAULT_HEADERS,
) -> dict[str, Any]:
    """A ``parity:`` section that would excuse the calibrated noise (empty if none)."""
    endpoints: dict[str, dict[str, Any]] = {}
    for endpoint, keys in sorted(noise.items()):
        block: dict[str, Any] = {}
        for (field, kind), samples in sorted(keys.items()):
            if kind == "status":
                pairs = sorted({(d.primary, d.candidate) for d in samples})
                block.setdefault("allow_status", []).extend(
                    [list(p) for p in pairs if all(isinstance(s, int) for s in p)]
                )
            elif kind == "header":
                name = field.split(":", 1)[1]
                block["headers"] = [
                    h for h in block.get("headers", headers) if h != name
                ]
            elif kind == "order":
                block.setdefault("unordered", {})[field] = "id"
            elif kind == "value" and (pattern := _common_pattern(samples)):
                block.setdefault("match", {})[field] = pattern
            elif kind != "body":
                block.setdefault("ignore", [])
                if field not in block["ignore"]:
                    block["ignore"].append(field)
        if block:
            endpoints[endpoint] = block
    return {"endpoints": endpoints} if endpoints else {}
