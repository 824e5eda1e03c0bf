"""``lamina demo``: the README's main job on the embedded defaults, offline."""

from __future__ import annotations

from importlib.resources import as_file, files
from typing import Annotated

import typer

from lamina.cli import models
from lamina.cli.context import state
from lamina.cli.output import IngestProgress, console, err_console, print_hits
from lamina.rag.answer import Answerer

DEMO_COLLECTION = "sample"
DEMO_QUESTION = "How do I resume an ingestion that was interrupted?"


def demo(
    question: Annotated[str, typer.Argument(help="What to ask the sample documents.")] = DEMO_QUESTION,
) -> None:
    """Ingest the bundled sample documents, search them, and answer a question with citations."""
    coll = state.workspace.collection(DEMO_COLLECTION, create=True)
    with as_file(files("lamina") / "samples") as samples:
        console.rule("[bold]1. ingest the bundled sample documents")
        with IngestProgress("ingest → sample", enabled=err_console.is_terminal) as bar:
            report = coll.ingest([str(samples)], sync=True, progress=bar)
    console.print(
        f"{report.ingested} ingested, {report.unchanged} unchanged, {report.skipped} skipped · "
        f"{report.chunks_written} chunks, {report.tokens_embedded:,} tokens embedded in {report.seconds:.1f}s"
    )
    console.rule(f"[bold]2. hybrid search: {question}")
    print_hits(coll.search(question, k=3))
    model = models.registry().get()
    answerer = Answerer(coll, model, state.settings.rag)
    how = "chosen from the sources, cited" if answerer.chooses else f"from {model.name}"
    console.rule(f"[bold]3. grounded answer, {how}")
    models.stream_answer(answerer, question)
    console.print(
        f'\nTry: lamina search "your question" -c {DEMO_COLLECTION} --json  ·  '
        f'lamina ask "your question" -c {DEMO_COLLECTION}'
    )
