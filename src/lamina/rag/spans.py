"""Candidate answers cut from a source the way its document is laid out.

A small model answers best by choosing and copying, so the answer is a span of a source: a whole
table row (with its header's names), a key–value line of an invoice or receipt (with the section
heading above it), or a sentence of prose. Each span keeps the text it is shown as; a row of
``| Body Labor | | 2 | 150 | 300 |`` under ``| | | Hours | Rate | Cost |`` is shown as
"Body Labor: Hours 2, Rate 150, Cost 300".
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from lamina.rag.citations import MARKER
from lamina.rag.sentences import degenerate, fragment, split_sentences, word_count

_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")
_RULE = re.compile(r"^[\s=\-_*~#.]{3,}$")  # "=====", "-----": a receipt's rules
_CITE_LINK = re.compile(r"\[\]\(#cite_note-[^)]*\)|\[\[\d+\]\]\(#cite_note-[^)]*\)")  # Wikipedia
_HTML_COMMENT = re.compile(r"<!--.*?-->")
SHORT_LINE = 64  # lines this short, most of a block's, make it a layout block (receipt, form)
MAX_SPAN_CHARS = 360


@dataclass(frozen=True)
class Span:
    n: int  # the source's number
    rank: int  # the source's place in retrieval (0 = first)
    text: str  # as shown in the answer
    kind: str  # "row", "field", "sentence", "code"; the chooser adds "item" (a named line and its values)
    order: int  # position inside the source
    values: str = ""  # a row's cells without the header's names ("" = all of ``text``)
    label: str = ""  # the name a key–value span's value stands under ("Cashier", "RETURN POLICY")
    context: str = ""  # the source's heading path: an FAQ answer's question, a section's name

    @property
    def own_text(self) -> str:
        """What the span itself says, without the names it borrows from a header."""
        return self.values or self.text


def spans_of(n: int, rank: int, text: str, context: str = "") -> list[Span]:
    """Every candidate span of one source, in reading order; ``context``: its heading path."""
    out: list[Span] = []
    for kind, piece, values, term in _pieces(_clean(text)):
        piece = " ".join(piece.split())
        if _usable(kind, piece):
            label = term or _label_of(kind, piece, values)
            if label and not values:  # "Cashier: Emily Rodriguez": the value is what it says
                values = piece[len(label) :].lstrip(" :*") if piece.startswith(label) else piece
            out.append(Span(n, rank, _shorten(piece), kind, len(out), values, label, context))
    return out


def _shorten(text: str) -> str:
    """At most MAX_SPAN_CHARS, cut at a word with "…": an answer is a sentence, not a passage."""
    if len(text) <= MAX_SPAN_CHARS:
        return text
    cut = text[: MAX_SPAN_CHARS - 1]
    return cut[: cut.rfind(" ")].rstrip(",;:") + " …" if " " in cut else cut + "…"


def _label_of(kind: str, text: str, values: str) -> str:
    if kind != "field":
        return ""
    if values and text.endswith(values):  # "HEADING: line"
        return text[: len(text) - len(values)].rstrip(": ")
    head, colon, _ = text.partition(":")
    return head.strip() if colon and len(head) <= 40 else ""


def _clean(text: str) -> str:
    return _HTML_COMMENT.sub("", _CITE_LINK.sub("", text))


def _usable(kind: str, piece: str) -> bool:
    if not piece or piece.endswith("…") or _RULE.match(piece):
        return False
    if piece.endswith("?"):  # a question: an FAQ's heading, not its answer
        return False
    if kind == "sentence":  # a sentence may end in ":" here: the list it introduces follows it
        return word_count(piece) >= 3 and not degenerate(piece.rstrip(":")) and not fragment(piece)
    return any(ch.isalnum() for ch in piece) and (word_count(piece) >= 1)


def _pieces(text: str) -> list[tuple[str, str, str, str]]:
    """(kind, text, values, term) in order: tables as rows, code as lines, layout blocks as fields,
    paragraphs as sentences; ``term``: the defined term of a definition list's entry."""
    out: list[tuple[str, str, str, str]] = []
    lines = [_QUOTE_MARK.sub("", line) for line in text.splitlines()]  # a quoted table is a table
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith("```"):
                j += 1
            out += [("code", line, "", "") for line in lines[i + 1 : j] if line.strip()]
            i = j + 1
            continue
        if lines[i].lstrip().startswith("|"):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            out += [(*row, "") for row in _rows(lines[i:j])]
            i = j
            continue
        j = i
        while j < len(lines) and lines[j].strip() and not lines[j].lstrip().startswith(("|", "```")):
            j += 1
        block = [line.strip() for line in lines[i:j]]
        if len(block) >= 2 and block[1].startswith(": ") and not block[0].startswith(":"):
            term = block[0].strip("*` ")  # "EAFP" over ": Easier to ask for forgiveness …"
            block = [block[1][2:], *block[2:]]
            pieces = _block(block)
            out += [(kind, f"{term}: {piece}", piece, term) for kind, piece, _ in pieces[:1]]
            out += [(*piece, "") for piece in pieces[1:]]
        elif block:
            out += [(*piece, "") for piece in _block(block)]
        i = max(j, i + 1)
    return out


def _block(block: list[str]) -> list[tuple[str, str, str]]:
    if _BULLET.match(block[0]):  # a bulleted list: each item with the lines it runs on into
        block = _unwrap(block).split("\n")
    short = sum(len(line) <= SHORT_LINE for line in block)
    if len(block) >= 2 and short >= 0.6 * len(block) and not _wrapped_prose(block):
        return [("field", line, value) for line, value in _fields(block)]
    return [("sentence", s, "") for s in split_sentences(MARKER.sub("", _unwrap(block)))]


_QUOTE_MARK = re.compile(r"^\s*(?:>\s?)+")
_BULLET = re.compile(r"^(?:[-*•]|\d{1,3}[.)])\s")
_LIST_ITEM = re.compile(r"^(?:[-*•>#]+|\d{1,3}[.)])\s")


def _unwrap(block: list[str]) -> str:
    """A paragraph's lines joined where its source hard-wrapped them; each list item on its own line
    (a line without a marker goes on the item above it, as Markdown reads it)."""
    out = block[0]
    for line in block[1:]:
        out += ("\n" if _LIST_ITEM.match(line) else " ") + line
    return out


def _wrapped_prose(block: list[str]) -> bool:
    """Hard-wrapped prose: most lines run on into a next line that starts lowercase (or with code
    that does: "`finally` clause's …")."""
    runs = sum(
        1
        for line, nxt in itertools.pairwise(block)
        if not line.endswith((".", ":", "!", "?")) and nxt.lstrip("`*_")[:1].islower()
    )
    return runs >= 0.5 * (len(block) - 1)


def _fields(block: list[str]) -> list[tuple[str, str]]:
    """(shown, own text): one line each; a heading line (ALL CAPS) is prefixed to the lines under it
    (its words are borrowed, like a table header's), a line ending ":" is joined with its value on
    the next line."""
    out: list[tuple[str, str]] = []
    heading = ""
    i = 0
    while i < len(block):
        line = block[i]
        if _RULE.match(line):
            heading = ""
        elif is_heading(line):
            heading = line.rstrip(":")
            out.append((line, ""))
        elif line.endswith(":") and i + 1 < len(block) and not is_heading(block[i + 1]):
            out.append((f"{line} {block[i + 1]}", ""))
            i += 1
        elif heading and heading.lower() not in line.lower():
            out.append((f"{heading}: {line}", line))
        else:
            out.append((line, ""))
        i += 1
    return out


def is_heading(line: str) -> bool:
    """A section heading of a form or receipt: ALL CAPS words, no digits ("RETURN POLICY")."""
    letters = [c for c in line if c.isalpha()]
    return len(letters) >= 4 and all(c.isupper() for c in letters) and not any(c.isdigit() for c in line)


def _cells(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|"):
        body = body[:-1]
    return [c.strip() for c in body.split("|")]


def _rows(lines: list[str]) -> list[tuple[str, str, str]]:
    """A Markdown table's data rows as (kind, text, values): each with the names of the header row
    when it has one; a row of several key–value pairs ("| Year | 2022 | Make | Jeep |") as one field
    per pair."""
    header: list[str] = []
    rows = [line for line in lines if not _SEPARATOR.match(line.strip())]
    if len(lines) >= 2 and _SEPARATOR.match(lines[1].strip()):
        header = _cells(lines[0])
        rows = rows[1:]
        named = [h for h in header if h]
        if not rows or len(named) < 2 or _numeric_row(header) or any(h.endswith(":") for h in named):
            rows = [lines[0], *rows]  # a "header" of values or of "Name:" labels is a row too
            header = []
    out: list[tuple[str, str, str]] = []
    for row in rows:
        cells = _cells(row)
        if header:
            out.append(("row", _named_row(cells, header), " ".join(cells)))
            continue
        values = [c for c in cells if c]
        pairs = _pairs(values)
        if len(pairs) > 1:
            out += [("field", pair, "") for pair in pairs]
        else:
            out.append(("row", pairs[0] if pairs else " · ".join(values), ""))
    return out


def _numeric_row(cells: list[str]) -> bool:
    values = [c for c in cells if c]
    return bool(values) and all(re.fullmatch(r"[\d.,$%\-+ ]+", c) for c in values)


def _named_row(cells: list[str], header: list[str]) -> str:
    """ "Body Labor: Hours 2, Rate 150, Cost 300": the first value, then the others by name."""
    values = [(header[i] if i < len(header) else "", c) for i, c in enumerate(cells) if c]
    if not values:
        return ""
    (first_name, first), *rest = values
    lead = f"{first_name} {first}" if first_name and not rest else first
    named = ", ".join(f"{name} {value}" if name else value for name, value in rest)
    return f"{lead}: {named}" if named else lead


def _pairs(values: list[str]) -> list[str]:
    """["Year: 2022", "Make: Jeep"] when the cells alternate label and value, else []."""
    if not values or len(values) % 2 or not all(_label(c) for c in values[::2]):
        return []
    return [f"{label.rstrip(':')}: {value}" for label, value in zip(values[::2], values[1::2], strict=True)]


def _label(cell: str) -> bool:
    return any(c.isalpha() for c in cell) and not _numeric_row([cell]) and len(cell) <= 40
