"""Citations that are real: ``[n]`` markers must point at retrieved sources.

The one definition of a citation marker: ``[1]`` or ``[1, 2]`` (``[1][2]`` is two markers).
``MARKER_PATTERN`` is its regular expression, for patterns that match a marker in some context
(the space before it, a run of them after a sentence); ``MARKER`` is the compiled one. The answer
assembler, the API's annotations and the web UI all find markers through :func:`find_markers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER_PATTERN = r"\[(?P<numbers>\d+(?:\s*,\s*\d+)*)\]"  # group "numbers": "1, 2" of "[1, 2]"
MARKER = re.compile(MARKER_PATTERN)


@dataclass(frozen=True)
class Marker:
    """One marker in a text: where it stands and the source numbers it names, in order."""

    start: int
    end: int
    numbers: tuple[int, ...]


def find_markers(text: str) -> list[Marker]:
    return [
        Marker(m.start(), m.end(), tuple(int(p) for p in m.group("numbers").split(",")))
        for m in MARKER.finditer(text)
    ]


def cited_numbers(text: str) -> list[int]:
    return list(dict.fromkeys(n for marker in find_markers(text) for n in marker.numbers))


def drop_invalid_markers(text: str, valid: int) -> str:
    """Remove ``[n]`` markers that point at no source (n outside 1..valid); keep the valid ones."""
    return keep_markers(text, set(range(1, valid + 1)))


def keep_markers(text: str, allowed: set[int]) -> str:
    """Remove from every marker the numbers not in ``allowed`` (a marker left empty goes)."""

    def keep(match: re.Match[str]) -> str:
        good = [p.strip() for p in match.group("numbers").split(",") if int(p) in allowed]
        return f"[{', '.join(good)}]" if good else ""

    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub(keep, text)).strip()
