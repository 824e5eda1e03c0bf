"""``lamina bench ocr``: the OCR engines side by side on scans of real text (``lamina.bench.ocr``)."""

from __future__ import annotations

from typing import Annotated, cast

import typer
from rich.table import Table

from lamina.bench.hardware import machine
from lamina.cli.options import DatasetOpt, JsonOpt
from lamina.cli.output import console, err_console, print_json
from lamina.config import OCR_ENGINES, OcrEngineName
from lamina.evals.beir import load_beir


def ocr(
    dataset: DatasetOpt,
    pages: Annotated[int, typer.Option(min=1, max=200, help="Pages to make, one document each.")] = 12,
    engine: Annotated[
        list[str] | None, typer.Option("--engine", help=f"Engines to measure: {', '.join(OCR_ENGINES)}.")
    ] = None,
    dpi: Annotated[
        list[int] | None, typer.Option(help="Resolutions to scan at (default: 150 and 300).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Character accuracy and pages per second of each OCR engine, on pages rendered from the
    dataset's documents and degraded as a scanner does (skew, specks, blur), all in one run."""
    from lamina.bench.ocr import bench_ocr

    unknown = sorted(set(engine or []) - set(OCR_ENGINES))
    if unknown:
        raise typer.BadParameter(f"unknown engine {unknown}; choose from {', '.join(OCR_ENGINES)}")
    engines = [cast(OcrEngineName, e) for e in engine or OCR_ENGINES]
    corpus = load_beir(dataset, limit_docs=pages).corpus
    texts = [f"{d['title']}. {d['text']}" if d.get("title") else d["text"] for d in corpus[:pages]]
    result = bench_ocr(texts, engines, dpi or [150, 300], lambda m: err_console.print(m, highlight=False))
    result["machine"] = machine()
    if as_json:
        print_json(result)
        return
    table = Table("engine", "dpi", "char accuracy", "worst page", "word accuracy", "pages/s")
    for r in result["results"]:
        if "unavailable" in r:
            table.add_row(r["engine"], str(r["dpi"]), r["unavailable"], "", "", "")
            continue
        table.add_row(
            r["engine"],
            str(r["dpi"]),
            f"{r['char_accuracy']:.1%}",
            f"{r['worst_page_char_accuracy']:.1%}",
            f"{r['word_accuracy']:.1%}",
            f"{r['pages_per_s']:.2f}",
        )
    console.print(table)
    console.print(f"{result['pages']} pages per engine and resolution on {result['machine']['cpu']}")
