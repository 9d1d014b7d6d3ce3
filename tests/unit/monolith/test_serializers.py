"""The strict fields and the query-parameter parser refuse what DRF would coerce."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIRequestFactory

from strangler.api.fields import TEXT_MAX_LENGTH, StrictCharField
from strangler.api.params import integer_param


@pytest.mark.parametrize("value", [5, 1.5, True, ["a"], {"a": 1}])
def test_strict_char_field_refuses_non_strings(value):
    field = StrictCharField(max_length=TEXT_MAX_LENGTH)
    with pytest.raises(ValidationError) as raised:
        field.run_validation(value)
    assert raised.value.detail == ["Not a valid string."]


def test_strict_char_field_trims_and_limits_length():
    field = StrictCharField(max_length=TEXT_MAX_LENGTH)
    assert field.run_validation("  hello ") == "hello"
    with pytest.raises(ValidationError):
        field.run_validation("x" * (TEXT_MAX_LENGTH + 1))


def _request(query: str):
    from rest_framework.request import Request

    return Request(APIRequestFactory().get(f"/api/votes/?{query}"))


@pytest.mark.parametrize(
    ("query", "expected"), [("user=7", 7), ("user=-3", -3), ("other=1", None)]
)
def test_integer_param_parses_ids(query, expected):
    assert integer_param(_request(query), "user") == expected


@pytest.mark.parametrize("raw", ["", "x", "1.0", " 1", "1e3", "\uff11", "1_000", "0x1"])
def test_integer_param_refuses_anything_but_digits_naming_the_param(raw):
    with pytest.raises(ValidationError) as raised:
        integer_param(_request(f"user={raw}"), "user")
    assert "user" in raised.value.detail
