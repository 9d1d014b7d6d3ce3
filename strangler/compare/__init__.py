"""Response comparison shared by the router's shadow mode and the parity runner.

``compare(primary, candidate, method=..., path=..., rules=...)`` checks the status, an
allowlist of headers and the JSON body normalised by the endpoint's noise rules (see
``strangler.compare.rules`` for the rules format) and returns a ``Comparison``.
"""

from __future__ import annotations

from strangler.compare.engine import compare
from strangler.compare.model import Comparison, Difference, Exchange
from strangler.compare.rules import RulesError, RuleSet, load_rules

__all__ = [
    "Comparison",
    "Difference",
    "Exchange",
    "RuleSet",
    "RulesError",
    "compare",
    "load_rules",
]
