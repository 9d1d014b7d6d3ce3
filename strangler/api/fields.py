"""Serializer fields that are strict about JSON types, so every deployable refuses the same
input: ``"choice_text": 5`` or ``"choice": "3"`` is a 400, never a silent conversion."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

TEXT_MAX_LENGTH = 200


class StrictCharField(serializers.CharField):
    """A string, and only a string."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An integer id of an existing row; strings, floats and booleans are refused."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)
