"""The router bench's gthread bookkeeping (scripts/bench/router): a round where one
gunicorn worker did under a fifth of the work measures gthread's accept race, not the
proxy, so ratios are also given over the rounds where neither side was one-sided."""

from __future__ import annotations

import pytest

from tests import router_bench


@pytest.fixture(scope="module")
def bench():
    return router_bench.load("bench_router")


@pytest.mark.parametrize(
    ("shares", "lopsided"),
    [
        ([0.97, 0.03], True),
        ([0.81, 0.19], True),
        ([0.7, 0.3], False),
        ([0.5, 0.5], False),
        ([1.0], False),  # one worker: nothing to be uneven
        (None, False),  # not measured (sync workers)
    ],
)
def test_one_sided(bench, shares, lopsided):
    assert bench.one_sided(shares) is lopsided


def _round(rps: float, shares: list[float]) -> dict:
    return {"rps": rps, "backend_worker_cpu_shares": shares}


def test_two_sided_keeps_only_rounds_even_on_both_sides(bench):
    even, uneven = [0.55, 0.45], [0.98, 0.02]
    rounds = {
        "direct_GET": [_round(1000, even), _round(500, uneven), _round(1000, even)],
        "router_GET": [_round(900, even), _round(950, even), _round(450, uneven)],
        "nginx_GET": [_round(950, even), _round(960, even), _round(940, even)],
        "floor_GET": [_round(980, uneven), _round(990, even), _round(970, uneven)],
        "router_python_GET": [_round(880, even), _round(890, even), _round(870, even)],
    }
    out: dict = {}
    bench._two_sided(out, rounds, "GET")
    assert out["one_sided_rounds_GET"] == {
        "direct": 1, "nginx": 0, "router": 1, "floor": 2, "router_python": 0,
    }  # fmt: skip
    # Round 2 (direct one-sided) and round 3 (router one-sided) are out: round 1 only.
    assert out["router_vs_direct_GET_two_sided"] == {
        "median": 0.9, "range": [0.9, 0.9], "rounds": 1,
    }  # fmt: skip
    assert out["nginx_vs_direct_GET_two_sided"]["rounds"] == 2
    assert out["nginx_vs_direct_GET_two_sided"]["median"] == pytest.approx(0.945)
    # The floor was one-sided in rounds 1 and 3, direct in round 2: nothing is left.
    assert out["floor_vs_direct_GET_two_sided"] is None


def test_the_moderate_rate_is_a_fifth_of_the_rounds_direct_rate(bench):
    for direct in (250.0, 330.0, 600.0):
        pause = bench.moderate_pause({"rps": direct})
        asked = bench.MONOLITH_MODERATE_CONNECTIONS / (pause + 2.0 / direct)
        assert asked == pytest.approx(direct / 5, rel=0.01)
    # a fast machine keeps the old floor of 20 ms; a dead backend no endless pause
    assert bench.moderate_pause({"rps": 2000.0}) == bench.MONOLITH_MODERATE_PAUSE
    assert bench.moderate_pause({"rps": 0.0}) == 1.0
