"""``lamina up``: the whole stack on embedded defaults, in one command.

The bundled sample documents are ingested into a collection (incrementally: a second start reads them,
finds them unchanged and embeds nothing), then ``lamina serve`` runs, with its announcement, followed
by a ``curl`` and an ``openai`` snippet that ask the samples a grounded question.
"""

from __future__ import annotations

import json
import shlex
import sys
from importlib.resources import as_file, files
from typing import Annotated, Any

import typer

from lamina.cli.demo import DEMO_QUESTION
from lamina.cli.output import IngestProgress, err_console
from lamina.cli.serve import run_server
from lamina.data.collection import Workspace
from lamina.data.progress import IngestReport
from lamina.serve.policy.keys import DEFAULT_TENANT
from lamina.serve.state import ServerState

SAMPLES_COLLECTION = "samples"
KEY_VAR = "LAMINA_API_KEY"


def ingest_samples(workspace: Workspace, collection: str) -> IngestReport:
    """The bundled sample documents into ``collection`` (made if missing); unchanged ones cost a read,
    samples gone from the package are dropped."""
    coll = workspace.collection(collection, create=True)
    with (
        as_file(files("lamina") / "samples") as samples,
        IngestProgress(f"ingest → {collection}", enabled=err_console.is_terminal) as bar,
    ):
        return coll.ingest([str(samples)], sync=True, progress=bar)


def ingest_summary(report: IngestReport) -> str:
    return (
        f"{report.ingested} ingested, {report.unchanged} unchanged, {report.skipped} skipped · "
        f"{report.chunks_written} chunks, {report.tokens_embedded:,} tokens embedded in {report.seconds:.1f}s"
    )


def curl_snippet(base: str, collection: str, question: str) -> str:
    """A grounded question with curl; the key comes from ``$LAMINA_API_KEY``."""
    body = {"model": f"rag:{collection}", "messages": [{"role": "user", "content": question}]}
    return (
        f"curl -s {base}/v1/chat/completions \\\n"
        f'  -H "Authorization: Bearer ${KEY_VAR}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(json.dumps(body, ensure_ascii=False))}"
    )


def python_snippet(base: str, collection: str, question: str) -> str:
    """The same question with the official ``openai`` package (``rag:NAME`` answers from a collection)."""
    return f"""\
import os

from openai import OpenAI

client = OpenAI(base_url={json.dumps(base + "/v1")}, api_key=os.environ[{json.dumps(KEY_VAR)}])
r = client.chat.completions.create(
    model={json.dumps("rag:" + collection)},
    messages=[{{"role": "user", "content": {json.dumps(question, ensure_ascii=False)}}}],
)
print(r.choices[0].message.content)
for c in r.choices[0].message.model_extra["citations"]:
    print(f"[{{c['n']}}] {{c['source']}}")
"""


def up(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default 127.0.0.1, loopback only).")
    ] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default 8080).")] = None,
    collection: Annotated[
        str, typer.Option("--collection", "-c", help="Collection the samples go into.")
    ] = SAMPLES_COLLECTION,
    no_ingest: Annotated[
        bool, typer.Option("--no-ingest", help="Do not ingest the bundled samples; just serve.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print where to go, the key and the snippets as JSON.")
    ] = False,
) -> None:
    """Start Lamina on embedded defaults: the bundled samples ingested, the API and web UI served.

    The first start makes an admin key and prints a sign-in link and snippets to ask the samples.

    The key is shown only then. Later starts find the samples unchanged and embed nothing. Ctrl-C stops.
    """
    report: IngestReport | None = None
    serving = False

    def before(server: ServerState, key: str | None, base: str) -> None:
        nonlocal report
        if no_ingest:
            return
        err_console.print(f"Ingesting the bundled sample documents into collection [bold]{collection}[/]…")
        report = ingest_samples(server.tenants.workspace(DEFAULT_TENANT), collection)
        err_console.print(f"{ingest_summary(report)}  (unchanged samples are never embedded again)")

    def after(server: ServerState, key: str | None, base: str) -> None:
        nonlocal serving
        serving = True
        info = server.tenants.workspace(DEFAULT_TENANT).registry.get_collection(collection)
        curl = curl_snippet(base, collection, DEMO_QUESTION)
        python = python_snippet(base, collection, DEMO_QUESTION)
        _print_next_steps(collection, info.documents if info else None, key, curl, python)
        if as_json:
            out: dict[str, Any] = {
                "url": base,
                "api": f"{base}/v1",
                "docs": f"{base}/docs",
                "key": key,
                "login_url": f"{base}/login?key={key}" if key else None,
                "collection": collection,
                "documents": info.documents if info else 0,
                "ingest": report.to_dict() if report is not None else None,
                "curl": curl,
                "python": python,
            }
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
            sys.stdout.flush()

    try:
        run_server(host, port, before=before, after=after)
    except KeyboardInterrupt:
        if not serving:
            err_console.print("\ninterrupted; the next `lamina up` goes on where this one stopped")
            raise typer.Exit(130) from None
    # uvicorn drained and stopped: it re-raises the Ctrl-C it captured, or (seen in CI, under load)
    # returns; either is the normal way to stop
    err_console.print("stopped")


def _print_next_steps(
    collection: str, documents: int | None, key: str | None, curl: str, python: str
) -> None:
    say = err_console.print
    if documents is None:
        say(f"\nNo collection {collection!r} yet: run `lamina up` without --no-ingest to add the samples.")
        return
    say(f"\n[bold]Ask the {documents} documents of collection {collection!r}[/] (answers cite sources):")
    if key is not None:
        say(f"\nexport {KEY_VAR}={key}", highlight=False, markup=False, soft_wrap=True)
    else:
        say(
            f"\nSet {KEY_VAR} to a key of the default tenant; to make one: lamina keys create NAME --admin",
            highlight=False,
            markup=False,
        )
    say(f"\n{curl}\n", highlight=False, markup=False, soft_wrap=True)
    say("# Python (pip install openai):", highlight=False, markup=False)
    say(python, highlight=False, markup=False, soft_wrap=True)
    say("Stop with Ctrl-C; the next `lamina up` starts in seconds: only changed samples are re-ingested.")
