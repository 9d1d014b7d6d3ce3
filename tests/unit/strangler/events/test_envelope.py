"""The event envelope's JSON round trip and its validation errors."""

from __future__ import annotations

import json
import uuid

import pytest

from strangler.events.envelope import (
    Event,
    InvalidEvent,
    UnknownEventType,
    require_known_type,
)


def make_event(**overrides) -> Event:
    fields = {
        "type": "vote.created",
        "source": "monolith",
        "aggregate_id": "7",
        "seq": 3,
        "data": {"id": 7, "choice_id": 2},
    }
    return Event(**(fields | overrides))


def test_event_round_trips_through_json():
    event = make_event()
    assert Event.from_json(event.to_json()) == event


def test_wire_format_has_exactly_the_envelope_fields():
    raw = json.loads(make_event().to_json())
    assert set(raw) == {
        "id",
        "type",
        "source",
        "aggregate_id",
        "seq",
        "occurred_at",
        "data",
    }


def test_integer_aggregate_id_on_the_wire_is_read_as_string():
    raw = make_event().to_dict() | {"aggregate_id": 7}
    assert Event.from_dict(raw).aggregate_id == "7"


def test_aggregate_type_is_the_type_prefix():
    assert make_event(type="choice.updated").aggregate_type == "choice"
    assert make_event(type="choice.deleted").is_deletion


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": 0}, "seq"),
        ({"seq": "1"}, "seq"),
        ({"seq": True}, "seq"),
        ({"type": "VoteCreated"}, "type"),
        ({"aggregate_id": ""}, "aggregate_id"),
        ({"data": [1]}, "data"),
        ({"id": "not-a-uuid"}, "id"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2024-01-01T00:00:00"}, "occurred_at"),
        ({"source": ""}, "source"),
    ],
)
def test_invalid_field_is_named_in_the_error(change, message):
    raw = make_event().to_dict() | change
    with pytest.raises(InvalidEvent, match=message):
        Event.from_dict(raw)


def test_missing_and_extra_fields_are_reported():
    raw = make_event().to_dict()
    del raw["seq"]
    with pytest.raises(InvalidEvent, match=r"missing seq"):
        Event.from_dict(raw)
    with pytest.raises(InvalidEvent, match=r"unknown fields extra"):
        Event.from_dict(make_event().to_dict() | {"extra": 1})


def test_non_json_body_is_invalid():
    with pytest.raises(InvalidEvent, match=r"not JSON"):
        Event.from_json(b"\xff{")
    with pytest.raises(InvalidEvent, match=r"JSON object"):
        Event.from_json(b"[]")


def test_unknown_type_is_refused():
    require_known_type("vote.created")
    with pytest.raises(UnknownEventType, match=r"vote.renamed"):
        require_known_type("vote.renamed")


def test_ids_are_unique_uuids():
    assert isinstance(make_event().id, uuid.UUID)
    assert make_event().id != make_event().id
