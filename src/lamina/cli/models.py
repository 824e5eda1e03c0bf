"""Model-layer commands: models, ask, chat."""

from __future__ import annotations

import sys
from functools import cache
from typing import Annotated

import typer
from rich.table import Table

from lamina.cli.context import state
from lamina.cli.options import FilterOpt
from lamina.cli.output import console, err_console, print_json
from lamina.data.filters import parse_cli_filters
from lamina.data.store.base import Where
from lamina.data.types import location
from lamina.engine.model import Models
from lamina.rag.answer import Answer, Answerer, ask_directly

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection to answer from.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Configured model name (see: lamina models).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of streaming.")]


@cache
def registry() -> Models:
    """One engine per process: a local model is loaded once, whatever the command."""
    return Models(state.settings)


def models(as_json: JsonOpt = False) -> None:
    """List configured models and whether each is available now."""
    infos = registry().describe()
    if as_json:
        print_json([m.to_dict() for m in infos])
        return
    table = Table("name", "backend", "window", "kind", "price in/out per 1M", "available")
    for m in infos:
        mark = "[green]yes[/]" if m.available else f"[red]no[/] {m.detail}"
        table.add_row(
            m.name + (" (default)" if m.default else ""),
            m.backend,
            str(m.context_window),
            "chat" if m.chat else "completion",
            f"{m.price_input_per_mtok:g} / {m.price_output_per_mtok:g}",
            mark,
        )
    console.print(table)


def _print_sources(answer: Answer) -> None:
    if not answer.citations:
        return
    console.print("\n[bold]Sources[/]")
    for c in answer.citations:
        where = location(c.page, c.headings)
        console.print(f"  [{c.n}] {c.source}" + (f" [dim]({where})[/]" if where else ""), highlight=False)


def _answerer(
    collection: str,
    model: str | None,
    k: int | None,
    memory_turns: int = 0,
    filters: list[str] | None = None,
) -> Answerer:
    coll = state.workspace.collection(collection)
    where = Where(fields=parse_cli_filters(filters)) if filters else None
    settings = state.settings.rag
    return Answerer(coll, registry().get(model), settings, k=k, memory_turns=memory_turns, where=where)


def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Collection to answer from.")
    ] = None,
    model: ModelOpt = None,
    k: Annotated[int | None, typer.Option("-k", min=1, max=100, help="Chunks to retrieve.")] = None,
    no_rag: Annotated[
        bool, typer.Option("--no-rag", help="Ask the model directly, without retrieval.")
    ] = False,
    filters: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from a collection, citing its sources as [1], [2]."""
    if no_rag:
        llm = registry().get(model)
        for event in ask_directly(llm, question, state.settings.rag.answer_tokens):
            if event.done and event.generation is not None:
                if as_json:
                    print_json(
                        Answer(
                            event.generation.text.strip(), [], llm.name, event.generation.usage, False
                        ).to_dict()
                    )
                else:
                    console.print()
            elif not as_json:
                console.print(event.text, end="", highlight=False, markup=False)
        return
    if collection is None:
        err_console.print("error: give a collection with -c NAME, or --no-rag to ask the model directly")
        raise typer.Exit(2)
    answerer = _answerer(collection, model, k, filters=filters)
    if as_json:
        print_json(answerer.ask(question).to_dict())
        return
    stream_answer(answerer, question)


def stream_answer(answerer: Answerer, question: str) -> Answer:
    """Print the answer once, as it is generated (the streamed text is the final text), then its sources."""
    final: Answer | None = None
    for piece in answerer.stream(question):
        if isinstance(piece, Answer):
            final = piece
        else:
            console.print(piece, end="", highlight=False, markup=False)
    console.print()
    assert final is not None
    _print_sources(final)
    return final


def chat(
    collection: CollectionOpt,
    model: ModelOpt = None,
    k: Annotated[int | None, typer.Option("-k")] = None,
    filters: FilterOpt = None,
) -> None:
    """Interactive questions about a collection; an empty line or Ctrl-D ends it."""
    answerer = _answerer(collection, model, k, memory_turns=3, filters=filters)
    console.print(
        f"[dim]chatting with {answerer.model.name} about {collection!r}; empty line or Ctrl-D to quit[/]"
    )
    while True:
        try:
            question = input("\n> " if sys.stdin.isatty() else "").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        stream_answer(answerer, question)
