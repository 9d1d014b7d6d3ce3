"""The consumer's handler registry."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from strangler.consumer.handlers import Handlers, load_handlers
from strangler.events.envelope import UnknownEventType


def test_handlers_register_per_type_and_bind_whole_entities():
    handlers = Handlers()

    @handlers.on("vote.created", "vote.deleted")
    def apply_vote(event):
        return None

    handlers.register("choice.created", apply_vote)
    assert handlers.get("vote.deleted") is apply_vote
    assert handlers.types == ["choice.created", "vote.created", "vote.deleted"]
    assert handlers.bindings() == ["choice.*", "vote.*"]


def test_unknown_type_names_what_is_handled():
    handlers = Handlers()
    handlers.register("vote.created", lambda event: None)
    with pytest.raises(
        UnknownEventType, match=r"no handler for 'vote.renamed'.*vote.created"
    ):
        handlers.get("vote.renamed")


def test_registering_a_type_twice_is_an_error():
    handlers = Handlers()
    handlers.register("vote.created", lambda event: None)
    with pytest.raises(ValueError, match=r"already registered"):
        handlers.register("vote.created", lambda event: None)


def test_load_handlers_rejects_a_path_without_a_registry():
    with pytest.raises(ImproperlyConfigured, match=r"not a Handlers registry"):
        load_handlers("strangler.events.envelope")
    with pytest.raises(ImproperlyConfigured, match=r"cannot import"):
        load_handlers("no.such.module")


def test_a_batch_handler_gets_lists_and_answers_for_one_event_too():
    handlers = Handlers()
    calls = []

    @handlers.on_batch("vote.created")
    def apply_votes(events):
        calls.append(list(events))

    handlers.register("vote.deleted", lambda event: calls.append(event))
    assert handlers.get_batch("vote.created") is apply_votes
    handlers.get("vote.created")("one")
    handlers.get_batch("vote.deleted")(["a", "b"])
    assert calls == [["one"], "a", "b"]
    assert handlers.types == ["vote.created", "vote.deleted"]


def test_a_type_has_one_handler_whether_for_events_or_batches():
    handlers = Handlers()
    handlers.register("vote.created", lambda event: None)
    with pytest.raises(ValueError, match=r"already registered"):
        handlers.register_batch("vote.created", lambda events: None)
    with pytest.raises(UnknownEventType, match=r"vote.renamed"):
        handlers.get_batch("vote.renamed")
