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
