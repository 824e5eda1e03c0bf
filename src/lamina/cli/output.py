"""Terminal output shared by every command: consoles, JSON, progress bars, tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lamina.data.types import Hit

console = Console(soft_wrap=not sys.stdout.isatty())  # pipes get whole lines, not 80 columns
err_console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())


def print_hits(hits: Sequence[Hit]) -> None:
    """Ranked hits as a person reads them: rank, score, source, page or heading path, snippet."""
    for rank, hit in enumerate(hits, start=1):
        where = f"  [dim]{hit.location}[/]" if hit.location else ""
        console.print(
            f"[bold cyan]{rank:>2}.[/] [green]{hit.score:.4f}[/] {hit.source}{where}", highlight=False
        )
        console.print(f"    {hit.snippet}", highlight=False, markup=False)


def print_json(data: Any) -> None:
    """Machine-readable output goes to stdout, unwrapped, one document."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


class IngestProgress:
    """Rich progress bar for the data layer's ``Progress`` protocol: documents, chunks, tokens/s."""

    def __init__(self, description: str, *, enabled: bool = True) -> None:
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("docs · {task.fields[chunks]} chunks · {task.fields[rate]} tok/s{task.fields[page]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not enabled,
        )
        self._task = self._bar.add_task(description, total=None, chunks=0, rate="-", page="")
        self._chunks = 0
        self._tokens = 0

    def __enter__(self) -> IngestProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._bar.stop()

    def start(self, total: int | None) -> None:
        self._bar.update(self._task, total=total)

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None:
        self._chunks += chunks
        self._tokens += tokens
        elapsed = self._bar.tasks[0].elapsed or 0.0
        rate = f"{self._tokens / elapsed:,.0f}" if elapsed > 0 and self._tokens else "-"
        self._bar.update(self._task, advance=documents, chunks=f"{self._chunks:,}", rate=rate)

    def file(self, source: str, state: str, detail: str = "") -> None:
        """A long document's pages as they are read (``page 3/300`` of a scan); the summary and
        ``lamina documents`` report per-file outcomes."""
        page = f" · {Path(source).name} {detail}" if state == "extracting" and detail else ""
        self._bar.update(self._task, page=page)
