"""Event refs on the wire (``X-Strangler-Events``, ``-Fence``, ``-Overtake``)."""

from __future__ import annotations

import pytest

from strangler.events.refs import MAX_REFS, BadRefs, EventRef, format_refs, parse_refs


def test_refs_format_as_type_id_at_seq_and_parse_back_in_order():
    refs = [EventRef("vote", "123", 2), EventRef("choice", "7", 1)]
    text = format_refs(refs)
    assert text == "vote:123@2, choice:7@1"
    assert parse_refs(text) == refs


def test_ids_with_separators_are_percent_encoded_and_survive():
    ref = EventRef("order", "eu:4@b, c", 12)
    assert str(ref) == "order:eu%3A4%40b%2C%20c@12"
    assert parse_refs(format_refs([ref, ref])) == [ref, ref]


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_header_is_no_refs(value):
    assert parse_refs(value) == []


@pytest.mark.parametrize(
    "value",
    ["vote:1", "vote@1", "vote:1@0", "vote:1@x", "Vote:1@1", "vote:1@2,", ":1@1"],
)
def test_a_malformed_ref_is_refused_naming_it(value):
    with pytest.raises(BadRefs, match="not an event ref"):
        parse_refs(value)


def test_more_refs_than_the_bound_are_refused():
    text = format_refs([EventRef("vote", str(n), 1) for n in range(MAX_REFS + 1)])
    with pytest.raises(BadRefs, match=f"at most {MAX_REFS}"):
        parse_refs(text)
