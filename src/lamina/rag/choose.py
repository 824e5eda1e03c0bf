"""Which span answers the question: its words, its meaning, its source's rank, its label, its kind.

The small local model copies well and composes badly, so a base model's answer is chosen among
candidate spans of the retrieved sources (see ``spans``). Each span is scored by
- the question's words it contains, weighted by how rare each is among all candidates (IDF), so a
  row naming "SKU-6678" beats rows that only share "unit cost"; words a span borrows (a header's
  names, its source's headings) count half;
- its similarity to the question in the embedder's space;
- the rank of its source in retrieval (the first hit is most often the one that answers);
- a label naming what is asked ("Estimator: Ellis Turner" for "who is the estimator");
- whether it holds the kind of thing asked for (``expected_kind``); a span that only repeats the
  question's words (a heading, the question said back) counts half.
Asking gemma-3-270m to choose instead (its output held by a grammar to copying one of the best
few) was measured and chose worse than this score (README, *Answers that are right*).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from lamina.data.embed.base import Embedder
from lamina.rag.context import Source
from lamina.rag.spans import Span, is_heading, spans_of
from lamina.rag.words import terms

_NUMBER = re.compile(r"\d")
_DATE = re.compile(
    r"\b(?:1[5-9]\d\d|20\d\d)\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z]\.)?\s+[A-Z][a-z]+\b")
_PLACE = re.compile(r"\b[A-Z][a-z]+\b")
_STREET = re.compile(
    r"\b\d+\s+(?:[A-Z][\w.]*\s+)+(?:St|Street|Ave|Avenue|Blvd|Boulevard|Rd|Road|Way|Dr|Drive|Lane|Ln|"
    r"Broadway|Place|Pl|Court|Ct|Square|Sq|Parkway)\b"
)
_DEFINITION = re.compile(r"^\s*what (?:is|are) (?:an? |the )?([\w\-. ]{2,40}?)\s*\??\s*$", re.IGNORECASE)

WEIGHTS = {"words": 0.5, "meaning": 0.3, "rank": 0.15, "kind": 0.2, "label": 0.25}
ITEM_LINES = 4  # lines after a line that names an item: a receipt item's code, price, discount
HEADER_WORD = 0.5  # a question word only in a row's header names counts half: every row has it
ECHO = 0.5


@dataclass(frozen=True)
class Scored:
    span: Span
    score: float
    shared: bool = True  # the span (or its label) has at least one of the question's words


def expected_kind(question: str) -> str:
    """What the question asks for: "address", "definition" ("what is X": "X is …"), "date",
    "number", "name", "place", or "" (anything)."""
    q = question.lower()
    if "address" in q:
        return "address"
    if (match := _DEFINITION.match(question)) and len(match.group(1).split()) <= 3:
        return "definition"
    if re.search(r"\b(when|what (year|date|day|month)|which (year|date))\b", q):
        return "date"
    if re.search(r"\b(how (many|much|long|old|big|large|fast)|what (percentage|share|number))\b", q):
        return "number"
    if re.search(
        r"\b(rate|cost|price|total|amount|tax|fee|percent|percentage|count|number|size|dimensions?|"
        r"budget|accuracy|variance|occupancy|revenue|balance|ending)\b",
        q,
    ):
        return "number"
    if re.match(r"\s*(who|whom|whose)\b", q) or re.search(r"\bwhich (person|people|company)\b", q):
        return "name"
    if re.match(r"\s*where\b", q):
        return "place"
    return ""


def _has_kind(kind: str, text: str, question: str, asked: set[str]) -> bool:
    """Whether ``text`` holds what ``kind`` asks for, beyond what the question (``asked``: its
    terms) already says."""
    if kind == "number":
        return any(_NUMBER.search(t) and t not in question for t in text.split())
    if kind == "date":
        return any(m.group(0) not in question for m in _DATE.finditer(text))
    if kind == "address":
        return bool(_STREET.search(text))
    if kind == "definition":
        match = _DEFINITION.match(question)
        subject = re.escape(match.group(1)) if match else ""
        return bool(re.search(rf"\b{subject}\s+(?:is|are|was|were)\b", text, re.IGNORECASE))
    if kind == "name":
        return any(not terms(m.group(0)) & asked for m in _NAME.finditer(text))
    if kind == "place":
        return any(not terms(m.group(0)) & asked for m in _PLACE.finditer(text))
    return True


def _named_items(spans: Sequence[Span], wanted: set[str]) -> list[Span]:
    """A layout line that only names what the question asks about ("Portable SSD 2TB" on a
    receipt) is joined with the lines after it, where its values stand."""
    items: list[Span] = []
    for i, span in enumerate(spans):
        own = terms(span.own_text)
        if span.kind != "field" or span.label or is_heading(span.text) or not own or not own <= wanted:
            continue
        after = list(itertools.takewhile(_continues(span.n), spans[i + 1 : i + 1 + ITEM_LINES]))
        if after:
            text = " · ".join(s.text for s in [span, *after])
            items.append(replace(span, text=text, kind="item", values="", label=""))
    return items


def _continues(n: int) -> Callable[[Span], bool]:
    """A line that goes on describing the item above it: same source, no label, not a heading."""
    return lambda s: s.n == n and s.kind == "field" and not s.label and not is_heading(s.text)


def candidate_spans(sources: Sequence[Source]) -> list[Span]:
    return [
        span
        for rank, s in enumerate(sources)
        for span in spans_of(s.n, rank, s.text, " > ".join(s.hit.headings))
    ]


def rank_spans(question: str, spans: Sequence[Span], embedder: Embedder) -> list[Scored]:
    """Spans best first; spans that only repeat the question's words count half."""
    if not spans:
        return []
    wanted = terms(question)
    spans = [*spans, *_named_items(spans, wanted)]
    span_terms = [terms(s.text) | terms(s.context) for s in spans]  # headings count like header names
    own_terms = [terms(s.own_text) for s in spans]
    df = {t: sum(t in st for st in span_terms) for t in wanted}
    idf = {t: math.log(1 + len(spans) / (1 + df[t])) for t in wanted}
    total = sum(idf.values()) or 1.0
    vectors = embedder.embed([question] + [s.text for s in spans])
    meaning = vectors[1:] @ vectors[0]
    kind = expected_kind(question)
    scored: list[Scored] = []
    for span, st, own, sim in zip(spans, span_terms, own_terms, meaning, strict=True):
        words = sum(idf[t] * (1.0 if t in own else HEADER_WORD) for t in wanted & st) / total
        label = sum(idf[t] for t in wanted & terms(span.label)) / total if own else 0.0
        if is_heading(span.label):
            label *= HEADER_WORD  # a section's heading over many lines names them less than "Cashier:"
        score = (
            WEIGHTS["label"] * label
            + WEIGHTS["words"] * words
            + WEIGHTS["meaning"] * float(sim)
            + WEIGHTS["rank"] / (1 + span.rank)
            + WEIGHTS["kind"] * _has_kind(kind, span.text, question, wanted)
        )
        if not own - wanted and not label:  # says nothing new: a heading, the question said back
            score *= ECHO
        scored.append(Scored(span, score, bool(wanted & st)))
    order = np.argsort([-s.score for s in scored], kind="stable")
    return [scored[i] for i in order]


def choose_answer(question: str, sources: Sequence[Source], embedder: Embedder) -> str:
    """The span that best answers ``question``, with the ``[n]`` of the source it is copied from;
    "" when no span shares a word with the question (retrieval found only neighbours of the topic)."""
    ranked = rank_spans(question, candidate_spans(sources), embedder)
    if terms(question):
        ranked = [s for s in ranked if s.shared]
    if not ranked:
        return ""
    best = ranked[0].span
    return f"{best.text} [{best.n}]"
