"""The stage engine: moves one plan (``migrations_plan/<service>.yaml``) through its stages.

``gates`` check a stage's thresholds against live data, ``stages`` says what every stage means
(dual-write modes, routes, frozen tables), ``actions`` applies that, ``store`` keeps the state
and the append-only history, and ``engine`` ties them into status, advance and rollback.
See docs/plans.md.
"""

from __future__ import annotations
