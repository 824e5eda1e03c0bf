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
few) was measured and chose worse than this score (docs/evaluation.md, *Answers that are right*).
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
_LIST_NUMBER = re.compile(r"^\s*\d{1,3}[.)]\s")
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_DATE = re.compile(  # a year, 12/31/2024, or a month with a day or year ("May 4", "4 May"), not "may"
    rf"\b(?:1[5-9]\d\d|20\d\d)\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b|\b{_MONTH}\s+\d{{1,4}}\b|\b\d{{1,2}}\s+{_MONTH}",
    re.IGNORECASE,
)
_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z]\.)?\s+[A-Z][a-z]+\b")
_PLACE = re.compile(r"\b[A-Z][a-z]+\b")
_STREET = re.compile(
    r"\b\d+\s+(?:[A-Z][\w.]*\s+)+(?:St|Street|Ave|Avenue|Blvd|Boulevard|Rd|Road|Way|Dr|Drive|Lane|Ln|"
    r"Broadway|Place|Pl|Court|Ct|Square|Sq|Parkway)\b"
)
_DEFINITION = re.compile(
    r"^\s*(?:what (?:is|are) (?:an? |the )?([\w\-. ]{2,40}?)|what (?:does|do) ([\w\-. ]{2,40}?) "
    r"(?:mean|stand for)\b.*?|what is meant by ([\w\-. ]{2,40}?)|define ([\w\-. ]{2,40}?))\s*\??\s*$",
    re.IGNORECASE,
)
_IDENTIFIER_ASKED = re.compile(
    r"\b(?:which|what|name the)\s+(?:\w+\s+){0,3}?(function|method|module|class|command|option|flag|"
    r"directive|attribute|exception|keyword|parameter|argument|variable|setting|pragma|field|type)s?\b",
    re.IGNORECASE,
)
_LITERAL = re.compile(r"`([^`]+)`|\b\w+(?:[._]\w+)+\b|\b\w+\(\)|(?<!\w)-{1,2}[a-z][\w-]*")
_QUOTED = re.compile(r"""['"`‘“]([^'"`’”\s]{1,12})['"`’”]|(?<!\w)(%[a-zA-Z])\b""")
_CODE_ASKED = re.compile(r"\b(code|command|syntax|type|call|import|example|write|run)\b", re.IGNORECASE)
_LEAD_IN = re.compile(  # "… as follows:", "The available types are:", "… given in the following table."
    r"\b(?:is|are|include|includes|these|following|below|as follows)\s*:$|"
    r"\b(?:the following|as follows|(?:listed|shown|given) below)\b",
    re.IGNORECASE,
)

NOT_FOUND = "The sources do not say this. Possibly relevant:"
WEIGHTS = {"words": 0.5, "meaning": 0.3, "rank": 0.15, "kind": 0.2, "label": 0.25, "literal": 0.25}
# Spans that rarely answer on their own count less: a sentence that introduces what follows
# ("… as follows:"), a line of code unless code is asked for.
LEAD_IN = 0.6
CONTINUED = 0.8
CODE = 0.6
MISSING_KIND = 0.5
MISSING_LITERAL = 0.6  # a span without the symbol the question quotes, when another span has it
NEIGHBOUR_WORD = 0.5  # evidence: a question word only in the span's source (its entity, its topic)
NEARBY = 3  # passages listed as "possibly relevant" when no span answers
ITEM_LINES = 4  # lines after a line that names an item: a receipt item's code, price, discount
HEADER_WORD = 0.5  # a question word only in a row's header names counts half: every row has it
ECHO = 0.5


@dataclass(frozen=True)
class Scored:
    span: Span
    score: float
    shared: bool = True  # the span (or its label) has at least one of the question's words
    evidence: float = 0.0  # how much of what is asked the span says (see ``evidence``)
    literal: float = 0.0  # share of the symbols the question quotes that the span has


@dataclass(frozen=True)
class Choice:
    """The chosen span (cited), how sure the chooser is of it, and the next best sources' spans."""

    text: str
    evidence: float
    nearby: tuple[str, ...] = ()  # other sources' best spans, cited: "possibly relevant"

    @property
    def refusal(self) -> str:
        """The answer when this choice is not good enough: said plainly, the closest passages cited."""
        return " ".join([NOT_FOUND, *(f"({i}) {text}" for i, text in enumerate(self.nearby, 1))])


def expected_kind(question: str) -> str:
    """What the question asks for: "address", "definition" ("what is X": "X is …"), "date",
    "number", "name", "place", or "" (anything)."""
    q = question.lower()
    if "address" in q:
        return "address"
    if (subject := defined_subject(question)) and len(subject.split()) <= 3:
        return "definition"
    if re.search(r"\b(when|what (year|date|day|month)|which (year|date))\b", q):
        return "date"
    if re.search(r"\b(how (many|much|long|old|big|large|fast)|what (percentage|share|number))\b", q):
        return "number"
    if re.search(r"\b(which|what) (pep|rfc|version|release|year|port|limit|size|factor|ratio)\b", q):
        return "number"
    if _IDENTIFIER_ASKED.search(question):
        return "identifier"
    if re.search(r"\bdefault\b", q):
        return "value"
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
        text = _LIST_NUMBER.sub("", text)  # "4. RotatingFileHandler …": an item's number says nothing
        return any(_NUMBER.search(t) and t not in question for t in text.split())
    if kind == "date":
        return any(m.group(0) not in question for m in _DATE.finditer(text))
    if kind == "address":
        return bool(_STREET.search(text))
    if kind == "definition":
        subject = re.escape(defined_subject(question))
        pattern = rf"\b{subject}\s*(?:is|are|was|were|means|stands for|refers to|:|\()"
        return bool(re.search(pattern, text, re.IGNORECASE))
    if kind in ("identifier", "value"):
        found = any(_literal_new(m.group(0), question) for m in _LITERAL.finditer(text))
        return found or (
            kind == "value" and any(_NUMBER.search(t) and t not in question for t in text.split())
        )
    if kind == "name":
        return any(not terms(m.group(0)) & asked for m in _NAME.finditer(text))
    if kind == "place":
        return any(not terms(m.group(0)) & asked for m in _PLACE.finditer(text))
    return True


def defined_subject(question: str) -> str:
    """X of "what is X", "what does X mean", "what is meant by X", "define X" ("" otherwise)."""
    match = _DEFINITION.match(question)
    return next((g for g in match.groups() if g), "") if match else ""


def quoted_literals(question: str) -> set[str]:
    """What the question quotes or writes as code ('^', `x`, %j): symbols words cannot match."""
    return {next(g for g in m.groups() if g) for m in _QUOTED.finditer(question)}


def _has_literal(literal: str, text: str) -> bool:
    """``literal`` standing alone in ``text``: quoted or in code, or (a symbol) between spaces and bars."""
    if literal.isalnum():  # a quoted 'x' is not every word x
        return bool(re.search(rf"['\"`‘“]{re.escape(literal)}['\"`’”]", text))
    return bool(re.search(rf"(?:^|[\s'\"`‘“(|]){re.escape(literal)}(?:$|[\s'\"`’”)|,.:])", text))


def _literal_new(literal: str, question: str) -> bool:
    """A code literal (`x`, a.b, f(), --flag) that the question does not already name."""
    bare = literal.strip("`").strip()
    return bool(bare) and bare.lower() not in question.lower()


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
    span_terms = [terms(s.text) | terms(s.context) | terms(s.label) for s in spans]  # like header names
    literals = quoted_literals(question)
    own_terms = [terms(s.own_text) for s in spans]
    df = {t: sum(t in st for st in span_terms) for t in wanted}
    idf = {t: math.log(1 + len(spans) / (1 + df[t])) for t in wanted}
    total = sum(idf.values()) or 1.0
    around: dict[int, set[str]] = {}  # each source's words: what a span's neighbours say
    for s, st in zip(spans, span_terms, strict=True):
        around.setdefault(s.n, set()).update(st)
    vectors = embedder.embed([question] + [s.text for s in spans])
    meaning = vectors[1:] @ vectors[0]
    kind = expected_kind(question)
    code_asked = bool(_CODE_ASKED.search(question))
    scored: list[Scored] = []
    for span, st, own, sim in zip(spans, span_terms, own_terms, meaning, strict=True):
        words = sum(idf[t] * (1.0 if t in own else HEADER_WORD) for t in wanted & st) / total
        label = sum(idf[t] for t in wanted & terms(span.label)) / total if own else 0.0
        if is_heading(span.label):
            label *= HEADER_WORD  # a section's heading over many lines names them less than "Cashier:"
        literal = sum(_has_literal(x, span.text) for x in literals) / len(literals) if literals else 0.0
        kind_ok = _has_kind(kind, span.text, question, wanted)
        score = (
            WEIGHTS["label"] * label
            + WEIGHTS["literal"] * literal
            + WEIGHTS["words"] * words
            + WEIGHTS["meaning"] * float(sim)
            + WEIGHTS["rank"] / (1 + span.rank)
            + WEIGHTS["kind"] * kind_ok
        )
        if not own - wanted and not label:  # says nothing new: a heading, the question said back
            score *= ECHO
        score *= _alone(span, code_asked)
        asked = sum(idf[t] * (1.0 if t in st else NEIGHBOUR_WORD) for t in wanted & around[span.n]) / total
        said = evidence(asked, kind_ok, literal if literals else None)
        scored.append(Scored(span, score, bool(wanted & st) or literal > 0, said, literal))
    if literals and any(s.literal for s in scored):  # the question names a symbol some span has
        scored = [s if s.literal else replace(s, score=s.score * MISSING_LITERAL) for s in scored]
    order = np.argsort([-s.score for s in scored], kind="stable")
    return [scored[i] for i in order]


def _alone(span: Span, code_asked: bool) -> float:
    """How well the span can stand alone as an answer (1: fully; see LEAD_IN, CONTINUED, CODE)."""
    if span.kind == "sentence" and _LEAD_IN.search(span.text):
        return LEAD_IN
    if span.kind == "sentence" and span.text.endswith(":"):  # goes on in what follows it
        return CONTINUED
    return CODE if span.kind == "code" and not code_asked else 1.0


def evidence(asked: float, kind_ok: bool, literal: float | None) -> float:
    """How much of what is asked a span says, 0–1: the share of the question's words it has (IDF
    weighted, its headings and header names included; a word only its source has counts half),
    halved when it lacks the kind of thing asked for (a number for "how many"), halved when it has
    none of the symbols the question quotes ('%G'). ``rag.min_evidence`` is the bar a chosen answer
    must clear (the trade-off it was picked from: docs/evaluation.md, *Answers that are right*)."""
    value = asked * (1.0 if kind_ok else MISSING_KIND)
    if literal is not None and literal == 0:
        value *= MISSING_KIND
    return round(value, 4)


def choose_answer(question: str, sources: Sequence[Source], embedder: Embedder) -> Choice | None:
    """The span that best answers ``question``, with the ``[n]`` of the source it is copied from,
    and the evidence for it; ``None`` when no span shares a word with the question (retrieval found
    only neighbours of the topic)."""
    ranked = rank_spans(question, candidate_spans(sources), embedder)
    if terms(question) or quoted_literals(question):
        ranked = [s for s in ranked if s.shared]
    if not ranked:
        return None
    best = ranked[0]
    nearby: list[str] = []
    for scored in ranked[1:]:
        if scored.span.n != best.span.n and all(f"[{scored.span.n}]" not in x for x in nearby):
            nearby.append(f"{scored.span.text} [{scored.span.n}]")
        if len(nearby) == NEARBY - 1:
            break
    return Choice(
        f"{best.span.text} [{best.span.n}]", best.evidence, (f"{best.span.text} [{best.span.n}]", *nearby)
    )
