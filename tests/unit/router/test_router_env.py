"""The router's numeric environment settings: a bad value stops it with a message that
names the variable, before it serves anything."""

from __future__ import annotations

import pytest

from router.app import _env_seconds


@pytest.mark.parametrize("raw", ["abc", "-1", "nan", "inf", "1s"])
def test_a_bad_value_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("ROUTER_OWNER_WAIT_SECONDS", raw)
    with pytest.raises(SystemExit) as stopped:
        _env_seconds("ROUTER_OWNER_WAIT_SECONDS", 3.0)
    assert "ROUTER_OWNER_WAIT_SECONDS" in str(stopped.value)
    assert repr(raw) in str(stopped.value)


@pytest.mark.parametrize(
    ("raw", "seconds"), [(None, 3.0), ("", 3.0), ("0", 0.0), ("2.5", 2.5)]
)
def test_good_values_and_the_default(monkeypatch, raw, seconds):
    if raw is None:
        monkeypatch.delenv("ROUTER_OWNER_WAIT_SECONDS", raising=False)
    else:
        monkeypatch.setenv("ROUTER_OWNER_WAIT_SECONDS", raw)
    assert _env_seconds("ROUTER_OWNER_WAIT_SECONDS", 3.0) == seconds
