"""Structure-aware chunking: headings, then paragraphs, then sentences, within a token budget.

Budgets are measured with the embedder's own tokenizer, and the chunk's context line (title and
heading path, prepended when embedding) is charged to the budget, so nothing is cut off silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from lamina.data.types import Chunk, Document

TokenCounter = Callable[[Sequence[str]], list[int]]

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_BLOCK_SPLIT = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n")
_MIN_WORD_CHARS = 12
_MIN_TEXT_BUDGET = 48


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    tokens: int
    para: int


@dataclass
class _Section:
    headings: tuple[str, ...]
    blocks: list[tuple[int, int]]


def _blocks(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for match in _BLOCK_SPLIT.finditer(text):
        if match.start() > pos:
            yield pos, match.start()
        pos = match.end()
    if pos < len(text):
        yield pos, len(text)


def _sections(text: str, page_starts: Sequence[int] = ()) -> list[_Section]:
    """Sections by heading; a new page starts a new section under the same headings, so a chunk
    never straddles two pages and its citation names the page it is on."""
    stack: list[tuple[int, str]] = []
    sections = [_Section((), [])]
    pages = iter(page_starts[1:])
    next_page = next(pages, None)
    for start, end in _blocks(text):
        turned = False
        while next_page is not None and start >= next_page:
            turned, next_page = True, next(pages, None)
        if turned and sections[-1].blocks:
            sections.append(_Section(sections[-1].headings, []))
        block = text[start:end]
        first_line, _, rest = block.partition("\n")
        heading = _HEADING.match(first_line)
        if heading:
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading.group(2).strip()))
            sections.append(_Section(tuple(h for _, h in stack), []))
            if rest.strip():
                offset = start + len(first_line) + 1
                sections[-1].blocks.append((offset, end))
        else:
            sections[-1].blocks.append((start, end))
    return [s for s in sections if s.blocks]


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, pos = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.start() > pos:
            spans.append((pos, match.start()))
        pos = match.end()
    if pos < end:
        spans.append((pos, end))
    return spans


class Chunker:
    def __init__(
        self, count_tokens: TokenCounter, *, chunk_tokens: int = 256, overlap_tokens: int = 32
    ) -> None:
        self._count = count_tokens
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens

    def chunk(self, doc: Document) -> list[Chunk]:
        title = doc.title or ""
        chunks: list[Chunk] = []
        seen_text: set[str] = set()
        for section in _sections(doc.text, doc.page_starts):
            probe = Chunk(doc.doc_id, doc.source, title, section.headings, None, 0, 0, "", 0, 0)
            context_tokens = self._count([probe.context])[0] + 2 if probe.context else 0
            budget = max(self.chunk_tokens - context_tokens, _MIN_TEXT_BUDGET)
            for span in self._pack(doc.text, section.blocks, budget):
                text = doc.text[span[0] : span[1]]
                if sum(ch.isalnum() for ch in text) < _MIN_WORD_CHARS or text in seen_text:
                    continue
                seen_text.add(text)
                chunks.append(
                    Chunk(
                        doc_id=doc.doc_id,
                        source=doc.source,
                        title=title,
                        headings=section.headings,
                        page=doc.page_at(span[0]),
                        start=span[0],
                        end=span[1],
                        text=text,
                        n_tokens=span[2],
                        ordinal=len(chunks),
                        meta=doc.meta,
                        attrs=doc.attrs,
                        readers=doc.readers,
                    )
                )
        return chunks

    def _units(self, text: str, blocks: list[tuple[int, int]], budget: int) -> list[_Span]:
        """Sentences (lines, for tables and lists) tagged with their paragraph; oversize ones halved."""
        raw: list[tuple[int, int, int]] = []
        for para, (start, end) in enumerate(blocks):
            raw.extend((s, e, para) for s, e in _sentence_spans(text, start, end))
        counts = self._count([text[s:e] for s, e, _ in raw]) if raw else []
        units: list[_Span] = []
        for (start, end, para), tokens in zip(raw, counts, strict=True):
            if tokens <= budget:
                units.append(_Span(start, end, tokens, para))
            else:
                units.extend(_Span(s, e, t, para) for s, e, t in self._halve(text, start, end, budget))
        return units

    def _halve(self, text: str, start: int, end: int, budget: int) -> list[tuple[int, int, int]]:
        tokens = self._count([text[start:end]])[0]
        if tokens <= budget or end - start < 2:
            return [(start, end, tokens)]
        middle = (start + end) // 2
        space = text.rfind(" ", start + 1, middle + (end - start) // 4)
        cut = space if space > start else middle
        right = cut + 1 if text[cut] == " " else cut
        return self._halve(text, start, cut, budget) + self._halve(text, right, end, budget)

    def _pack(self, text: str, blocks: list[tuple[int, int]], budget: int) -> Iterator[tuple[int, int, int]]:
        units = self._units(text, blocks, budget)
        current: list[_Span] = []
        used = 0
        i = 0
        while i < len(units):
            para = units[i].para
            para_units = [u for u in units[i:] if u.para == para]
            para_tokens = sum(u.tokens for u in para_units)
            if used + para_tokens <= budget:  # the whole paragraph fits: take it
                current.extend(para_units)
                used += para_tokens
                i += len(para_units)
                continue
            if current and used >= budget // 2:  # full enough: break at the paragraph boundary
                yield self._emit(current)
                current, used = self._overlap(current)
                if used + para_tokens <= budget:
                    continue
            unit = units[i]  # fill sentence by sentence
            if used + unit.tokens > budget and current:
                yield self._emit(current)
                current, used = self._overlap(current)
                if used + unit.tokens > budget:
                    current, used = [], 0
            current.append(unit)
            used += unit.tokens
            i += 1
        if current:
            yield self._emit(current)

    def _overlap(self, previous: list[_Span]) -> tuple[list[_Span], int]:
        carried: list[_Span] = []
        used = 0
        for unit in reversed(previous):
            if used + unit.tokens > self.overlap_tokens:
                break
            carried.insert(0, unit)
            used += unit.tokens
        if len(carried) == len(previous):  # never carry a whole chunk: that is a duplicate
            return [], 0
        return carried, used

    @staticmethod
    def _emit(units: list[_Span]) -> tuple[int, int, int]:
        return units[0].start, units[-1].end, sum(u.tokens for u in units)
