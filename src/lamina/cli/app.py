"""The ``lamina`` command: one Typer app, each command group in its own module."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lamina import __version__
from lamina.cli import bench, data, demo, evals, mcp, models, serve, sources, up, versions, worker
from lamina.cli.context import state
from lamina.cli.output import err_console
from lamina.errors import LaminaError

app = typer.Typer(
    name="lamina",
    help="Self-hosted LLM infrastructure: ingest documents, search them, ground answers in them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"lamina {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="LAMINA_DATA_DIR", help="Where Lamina keeps its state."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Configuration file (default ./lamina.toml, or $LAMINA_CONFIG)."),
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    if config is not None:
        os.environ["LAMINA_CONFIG"] = str(config)
    state.data_dir = data_dir


app.command()(data.ingest)
app.command()(data.search)
app.command()(data.collections)
app.command()(data.documents)
app.command()(data.drop)
app.command()(versions.reindex)
app.command()(versions.versions)
app.command()(versions.switch)
app.command()(versions.rollback)
app.command()(models.ask)
app.command()(models.chat)
app.command()(models.models)
app.command()(demo.demo)
app.command()(serve.serve)
app.command()(up.up)
app.command()(worker.worker)
app.command()(mcp.mcp)
app.add_typer(serve.keys_app, name="keys")
app.add_typer(sources.sources_app, name="sources")
app.command()(serve.logs)
app.command()(serve.usage)
app.add_typer(evals.eval_app, name="eval")
app.add_typer(bench.bench_app, name="bench")


def main() -> None:
    """Entry point: expected failures print one line, never a traceback (set LAMINA_DEBUG=1 for one)."""
    try:
        app()
    except LaminaError as exc:
        if os.environ.get("LAMINA_DEBUG"):
            raise
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)  # "lamina[ray]" stays
        sys.exit(1)
