"""A page's words (with boxes) back into text: lines, paragraphs, and tables found by column alignment.

The same for an OCR'd page and a born-digital PDF page (pdfplumber's words), so a table keeps its
rows either way. Words on one baseline make a line; a gap wider than a few characters splits a line
into cells. A run of lines whose cells fall into the columns of the line above them (at least two
columns, a header and two rows) is a table, written as a Markdown table, which the answer path
reads as rows named by their header ("Item: C-031, Qty 2, Unit price 212.75").
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Boxed(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def x0(self) -> float: ...
    @property
    def x1(self) -> float: ...
    @property
    def top(self) -> float: ...
    @property
    def bottom(self) -> float: ...


CELL_GAP = 1.5  # a horizontal gap of this many line heights separates cells
PARAGRAPH_GAP = 0.9  # a vertical gap of this many line heights separates paragraphs
MIN_ROWS = 2  # data rows under a header before a run of lines is a table
MAX_CELL_CHARS = 40  # a table's cells are short (median); two columns of prose are not a table


@dataclass
class Cell:
    text: str
    x0: float
    x1: float


@dataclass
class Line:
    top: float
    bottom: float
    cells: list[Cell] = field(default_factory=list)
    words: list[Boxed] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(c.text for c in self.cells)


def lines_of(words: Sequence[Boxed]) -> list[Line]:
    """Words grouped into lines (top to bottom), each split into cells at wide gaps."""
    ordered = sorted((w for w in words if w.text.strip()), key=lambda w: ((w.top + w.bottom) / 2, w.x0))
    if not ordered:
        return []
    height = statistics.median(w.bottom - w.top for w in ordered) or 1.0
    rows: list[list[Boxed]] = []
    for word in ordered:
        middle = (word.top + word.bottom) / 2
        if rows:
            last = rows[-1]
            centre = statistics.fmean((w.top + w.bottom) / 2 for w in last)
            if abs(middle - centre) <= height * 0.5:
                last.append(word)
                continue
        rows.append([word])
    lines = []
    for row in rows:
        row.sort(key=lambda w: w.x0)
        line = Line(min(w.top for w in row), max(w.bottom for w in row), words=row)
        for word in row:
            cell = line.cells[-1] if line.cells else None
            if cell is not None and word.x0 - cell.x1 <= height * CELL_GAP:
                cell.text += " " + word.text.strip()
                cell.x1 = max(cell.x1, word.x1)
            else:
                line.cells.append(Cell(word.text.strip(), word.x0, word.x1))
        lines.append(line)
    return lines


Span = tuple[float, float]


def _block_columns(lines: Sequence[Line]) -> list[Span] | None:
    """The columns of a run of lines (their cells' x-extents merged where they overlap), or None
    when the lines do not share them: two cells of one line in one column, or more columns than
    the widest line has cells (cells that fall between columns)."""
    spans = sorted((c.x0, c.x1) for line in lines for c in line.cells)
    columns: list[Span] = []
    for x0, x1 in spans:
        if columns and x0 <= columns[-1][1]:
            columns[-1] = (columns[-1][0], max(columns[-1][1], x1))
        else:
            columns.append((x0, x1))
    if len(columns) < 2 or len(columns) > max(len(line.cells) for line in lines):
        return None
    for line in lines:
        placed = [_column(columns, (c.x0 + c.x1) / 2) for c in line.cells]
        if len(set(placed)) != len(placed):
            return None
    return columns


def _column(columns: Sequence[Span], x: float) -> int:
    """The column that holds ``x``, or the nearest one."""
    return min(range(len(columns)), key=lambda i: max(columns[i][0] - x, x - columns[i][1], 0.0))


def _header(line: Line, columns: Sequence[Span], height: float) -> list[str] | None:
    """The line above a table as its header: each name over its column. A header's names are often
    closer together than a cell gap, so its words are placed one by one; where a name begins a
    column it must line up with that column's left or right edge. A caption over several columns
    ("Customer Information" over a table of labels and values) does not, and is no header."""
    names = [""] * len(columns)
    for word in line.words:
        x = (word.x0 + word.x1) / 2
        i = _column(columns, x)
        if max(columns[i][0] - x, x - columns[i][1], 0.0) > height * CELL_GAP:
            return None
        if not names[i]:
            left, right = abs(word.x0 - columns[i][0]), abs(word.x1 - columns[i][1])
            if min(left, right) > height:  # a name that starts a column starts where the column does
                return None
        names[i] = f"{names[i]} {word.text.strip()}".strip()
    named = sum(1 for n in names if n)
    return names if named >= 2 and 2 * named >= len(columns) else None


def _table(lines: list[Line], start: int) -> tuple[int, list[Span]]:
    """How many lines from ``start`` make a table (0: none), and its columns."""
    end, columns = start, None
    while end < len(lines) and len(lines[end].cells) >= 2:
        widened = _block_columns(lines[start : end + 1])
        if widened is None:
            break
        end, columns = end + 1, widened
    if columns is None or end - start < MIN_ROWS:
        return 0, []
    cells = [len(c.text) for line in lines[start:end] for c in line.cells]
    return (end - start, columns) if statistics.median(cells) <= MAX_CELL_CHARS else (0, [])


def _markdown_table(header: list[str] | None, lines: Sequence[Line], columns: Sequence[Span]) -> str:
    rows = [header] if header else []
    for line in lines:
        cells = [""] * len(columns)
        for cell in line.cells:
            cells[_column(columns, (cell.x0 + cell.x1) / 2)] = cell.text
        rows.append(cells)
    out = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    out.insert(1, "| " + " | ".join("---" for _ in columns) + " |")
    return "\n".join(out)


def page_text(words: Sequence[Boxed]) -> str:
    """A page's text: paragraphs of lines, and its tables as Markdown tables."""
    lines = lines_of(words)
    if not lines:
        return ""
    height = statistics.median(line.bottom - line.top for line in lines) or 1.0
    blocks: list[str] = []
    paragraph: list[str] = []
    i = 0
    while i < len(lines):
        n, columns = _table(lines, i)
        if n and 2 * len(lines[i].cells) < len(columns):
            n = 0  # a line that fills under half the columns ("Prepared By: Sarah  Martinez") is text
        if n:
            header = _header(lines[i - 1], columns, height) if paragraph else None
            if header is not None:
                paragraph.pop()
            if paragraph:
                blocks.append("\n".join(paragraph))
                paragraph = []
            blocks.append(_markdown_table(header, lines[i : i + n], columns))
            i += n
            continue
        line = lines[i]
        if paragraph and line.top - lines[i - 1].bottom > height * PARAGRAPH_GAP:
            blocks.append("\n".join(paragraph))
            paragraph = []
        paragraph.append(line.text)
        i += 1
    if paragraph:
        blocks.append("\n".join(paragraph))
    return "\n\n".join(blocks)
