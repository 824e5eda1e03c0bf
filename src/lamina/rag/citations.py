"""Citations that are real: ``[n]`` markers must point at retrieved sources."""

from __future__ import annotations

import re

MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def cited_numbers(text: str) -> list[int]:
    out: list[int] = []
    for match in MARKER.finditer(text):
        for part in match.group(1).split(","):
            n = int(part)
            if n not in out:
                out.append(n)
    return out


def drop_invalid_markers(text: str, valid: int) -> str:
    """Remove ``[n]`` markers that point at no source (n outside 1..valid); keep the valid ones."""

    def keep(match: re.Match[str]) -> str:
        good = [p.strip() for p in match.group(1).split(",") if 1 <= int(p) <= valid]
        return f"[{', '.join(good)}]" if good else ""

    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub(keep, text)).strip()
