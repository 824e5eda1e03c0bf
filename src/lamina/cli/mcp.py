"""``lamina mcp``: the collections as MCP tools over stdio, for desktop clients (Claude Desktop and
the like), from a running server (with ``LAMINA_API_KEY``) or from the local workspace."""

from __future__ import annotations

import os
from typing import Annotated

import anyio
import typer

from lamina.cli.context import state
from lamina.cli.output import err_console
from lamina.mcp.tools import build_mcp

KEY_VAR = "LAMINA_API_KEY"


def mcp(
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar="LAMINA_BASE_URL",
            help="The Lamina server to ask when LAMINA_API_KEY is set (default http://127.0.0.1:8080).",
        ),
    ] = None,
) -> None:
    """Serve list_collections, search and answer as MCP tools on stdin/stdout.

    With $LAMINA_API_KEY the tools ask the server at --base-url as that key (its tenant's
    collections, its budgets); without it, the local workspace beside the data (--data-dir).
    The key is read from the environment only, so it never shows in a process list.
    """
    key = os.environ.get(KEY_VAR)
    if key:
        anyio.run(_remote, base_url, key)
    else:
        anyio.run(_local)


async def _remote(base_url: str | None, key: str) -> None:  # imports here: each mode loads only its stack
    from lamina.client import AsyncLamina
    from lamina.mcp.remote import RemoteTools

    async with AsyncLamina(base_url, key) as client:
        err_console.print(f"lamina mcp: tools from {client.base_url}", highlight=False)
        await build_mcp(RemoteTools(client)).run_stdio_async()


async def _local() -> None:
    from lamina.mcp.local import LocalTools

    tools = LocalTools(state.workspace)
    err_console.print(f"lamina mcp: tools from the workspace in {state.settings.data_dir}", highlight=False)
    try:
        await build_mcp(tools).run_stdio_async()
    finally:
        tools.close()
