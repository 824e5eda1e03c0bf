"""Options the ``eval`` and ``bench`` commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DatasetOpt = Annotated[
    Path, typer.Option("--dataset", "-d", exists=True, file_okay=False, help="Folder in BEIR layout.")
]
LimitOpt = Annotated[int | None, typer.Option("--limit-docs", min=1, help="Use only the first N documents.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        "-f",
        help="Only documents whose metadata matches (repeatable, all must hold): team=finance, "
        "'year>=2024', 'kind=policy|memo', 'modified>=2025-01-01'.",
    ),
]
