"""Path patterns for routes: ``/api/votes/**`` and ``/api/questions/*/results/``.

A pattern is split on ``/``. A literal segment matches itself, ``*`` matches exactly one
non-empty segment and ``**`` (last segment only) matches zero or more segments. A trailing
``/`` is significant, as it is in Django's URLs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STAR = "*"
GLOB = "**"


class PatternError(ValueError):
    """The pattern text is not a valid route pattern; the message says how to fix it."""


@dataclass(frozen=True)
class Pattern:
    text: str
    segments: tuple[str, ...] = field(compare=False)
    glob: bool = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> Pattern:
        if not isinstance(text, str) or not text.startswith("/"):
            raise PatternError(f"{text!r} must start with '/'")
        parts = text[1:].split("/")
        glob = parts[-1] == GLOB
        if glob:
            parts = parts[:-1]
        for part in parts:
            if GLOB in part:
                raise PatternError(
                    f"{text!r}: '**' is allowed only as the last segment"
                )
            if STAR in part and part != STAR:
                raise PatternError(
                    f"{text!r}: '*' must be a whole segment (like /api/*/results/)"
                )
        for part in parts[:-1]:
            if part == "":
                raise PatternError(f"{text!r} has an empty segment ('//')")
        return cls(text, tuple(parts), glob)

    def match(self, path: str) -> bool:
        parts = path[1:].split("/") if path.startswith("/") else path.split("/")
        count = len(self.segments)
        if self.glob:
            if len(parts) < count:
                return False
        elif len(parts) != count:
            return False
        for want, got in zip(self.segments, parts, strict=False):
            if want == STAR:
                if got == "":
                    return False
            elif want != got:
                return False
        return True

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Larger is more specific: literal segments, then exact length, then length."""
        literals = sum(1 for s in self.segments if s != STAR)
        return (literals, 0 if self.glob else 1, len(self.segments))

    def overlaps(self, other: Pattern) -> bool:
        """True when some path matches both patterns."""
        a, b = self.segments, other.segments
        if not self.glob and not other.glob and len(a) != len(b):
            return False
        if not self.glob and len(a) < len(b):
            return False
        if not other.glob and len(b) < len(a):
            return False
        for x, y in zip(a, b, strict=False):
            if x != STAR and y != STAR and x != y:
                return False
            if (x == STAR and y == "") or (y == STAR and x == ""):
                return False
        return True

    def covers(self, other: Pattern) -> bool:
        """True when every path ``other`` matches is matched by this pattern too."""
        a, b = self.segments, other.segments
        if self.glob:
            if len(b) < len(a):
                return False
        elif other.glob or len(a) != len(b):
            return False
        for x, y in zip(a, b, strict=False):
            if x == STAR:
                if y == "":
                    return False
            elif x != y:
                return False
        return True

    def regex(self) -> str:
        """An anchored PCRE matching the same paths (for the nginx export)."""
        out = []
        for seg in self.segments:
            out.append("[^/]+" if seg == STAR else _escape(seg))
        body = "/".join(out)
        if self.glob:
            if not self.segments:
                return "^/.*$"
            return f"^/{body}(/.*)?$"
        return f"^/{body}$"


def _escape(text: str) -> str:
    return "".join("\\" + ch if ch in ".^$+?()[]{}|\\" else ch for ch in text)
