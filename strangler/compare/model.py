"""The values a comparison works on and produces: two exchanges in, differences out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DIFFERENCE_KINDS = frozenset(
    {"status", "header", "missing", "extra", "value", "type", "order", "body"}
)
# Bodies and values kept in a difference are cut to this many characters so that a
# report of thousands of mismatches stays readable and small.
MAX_VALUE_CHARS = 2000


@dataclass(frozen=True)
class Exchange:
    """One HTTP response as the comparison sees it."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """The header's value, looked up case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + f"... ({len(value)} characters)"
    return value


@dataclass(frozen=True)
class Difference:
    """One way the candidate's answer differs from the primary's.

    ``path`` is a JSON pointer into the body (``/results/0/id``, ``""`` for the root),
    ``"status"``, ``"header:<name>"`` or ``"body"`` for non-JSON bodies.
    """

    path: str
    kind: str
    primary: Any
    candidate: Any

    def __post_init__(self) -> None:
        if self.kind not in DIFFERENCE_KINDS:
            raise ValueError(f"unknown difference kind {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "primary": _jsonable(self.primary),
            "candidate": _jsonable(self.candidate),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Difference:
        return cls(
            data["path"], data["kind"], data.get("primary"), data.get("candidate")
        )


@dataclass
class Comparison:
    """The verdict on one pair of answers: real differences and rule-excused noise."""

    endpoint: str
    method: str
    path: str
    differences: list[Difference] = field(default_factory=list)
    noise: list[Difference] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "method": self.method,
            "path": self.path,
            "matched": self.matched,
            "differences": [d.to_dict() for d in self.differences],
            "noise": [d.to_dict() for d in self.noise],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(
            endpoint=data["endpoint"],
            method=data["method"],
            path=data["path"],
            differences=[Difference.from_dict(d) for d in data.get("differences", [])],
            noise=[Difference.from_dict(d) for d in data.get("noise", [])],
        )
