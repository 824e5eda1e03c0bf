"""An answer's text cut into text and citation markers, the sources it cites, and its copyable form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lamina.rag.citations import cited_numbers, find_markers


@dataclass(frozen=True)
class Segment:
    text: str
    n: int | None = None  # a citation marker's number; None for plain text


def relative(url: str) -> str:
    """A citation's URL without scheme and host: the API built it for the loopback address it was asked on."""
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path, parts.query, parts.fragment)) if parts.path else url


def segments(answer: str, known: set[int]) -> list[Segment]:
    """Plain text and markers, in order: ``[1, 2]`` is two markers; a marker with no citation stays text."""
    out: list[Segment] = []
    last = 0
    for m in find_markers(answer):
        numbers = [n for n in m.numbers if n in known]
        if not numbers:
            continue
        if m.start > last:
            out.append(Segment(answer[last : m.start]))
        out += [Segment(f"[{n}]", n) for n in numbers]
        last = m.end
    if last < len(answer):
        out.append(Segment(answer[last:]))
    return out


def cited(answer: str, citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The citations the answer marks, each once, in the order they are first marked."""
    by_n = {int(c["n"]): c for c in citations}
    return [
        by_n[n] | {"url": relative(str(by_n[n].get("url", "")))} for n in cited_numbers(answer) if n in by_n
    ]


def by_document(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cited sources grouped by document, each document once, with the passages cited from it."""
    docs: dict[str, dict[str, Any]] = {}
    for c in sources:
        key = str(c.get("document_id") or c.get("source"))
        doc = docs.setdefault(key, {"title": c.get("title"), "source": c.get("source"), "passages": []})
        doc["passages"].append(c)
    return list(docs.values())


def label(c: dict[str, Any]) -> str:
    """``Title (file, p. 3)``: what a reader needs to find the passage."""
    title = c.get("title") or c.get("source") or "source"
    where = [str(c["source"])] if c.get("source") and c.get("source") != title else []
    if c.get("page"):
        where.append(f"p. {c['page']}")
    return f"{title} ({', '.join(where)})" if where else str(title)


def copy_text(answer: str, sources: list[dict[str, Any]], base_url: str) -> str:
    """The answer with a numbered source list, for the clipboard."""
    if not sources:
        return answer
    lines = [answer, "", "Sources:"]
    lines += [f"[{c['n']}] {label(c)} {base_url.rstrip('/')}{c['url']}" for c in sources]
    return "\n".join(lines)
