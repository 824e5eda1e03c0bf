"""Citations that are real: markers must point at retrieved sources, and uncited answers get attributed."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from lamina.data.embed.base import Embedder

_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")


def cited_numbers(text: str) -> list[int]:
    out: list[int] = []
    for match in _MARKER.finditer(text):
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

    return re.sub(r"\s+([.,;:!?])", r"\1", _MARKER.sub(keep, text)).strip()


def drop_repeated_sentences(text: str) -> str:
    """Small models loop; a sentence already said is dropped (the first one stays)."""
    seen: set[str] = set()
    out: list[str] = []
    gap_start = 0
    for match in _SENTENCE.finditer(text):
        key = " ".join(re.sub(r"\W+", " ", _MARKER.sub("", match.group())).split()).lower()
        if key and key in seen:
            gap_start = match.end()
            continue
        seen.add(key)
        out.append(text[gap_start : match.start()] if out else "")
        out.append(match.group())
        gap_start = match.end()
    return re.sub(r"\n{2,}", "\n", "".join(out)).strip() if out else text


def attribute(
    text: str, sources: Sequence[str], embedder: Embedder, threshold: float
) -> tuple[str, list[int]]:
    """Append ``[n]`` to each sentence a source supports (cosine >= threshold); return the numbers used."""
    spans = [m for m in _SENTENCE.finditer(text) if len(m.group().strip()) > 3]
    if not spans or not sources:
        return text, []
    sentence_vecs = embedder.embed([m.group().strip() for m in spans])
    source_vecs = embedder.embed(list(sources))
    similarity = sentence_vecs @ source_vecs.T
    out, pos, used = [], 0, []
    for i, match in enumerate(spans):
        best = int(np.argmax(similarity[i]))
        end = match.end()
        out.append(text[pos:end])
        if similarity[i, best] >= threshold:
            stripped = out[-1].rstrip()
            out[-1] = f"{stripped} [{best + 1}]" + out[-1][len(stripped) :]
            if best + 1 not in used:
                used.append(best + 1)
        pos = end
    out.append(text[pos:])
    return "".join(out), used
