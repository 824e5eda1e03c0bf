"""The one definition of the MCP tools, over whichever backend answers them.

``CollectionTools`` is what a backend implements (the server's services, a remote server through
the SDK, the local workspace); ``build_mcp`` turns one into an ``MCPServer`` for any transport, so
the tools' names, arguments, limits and error handling are the same over HTTP and stdio.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Protocol, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, StringConstraints

from lamina import __version__

__all__ = ["MAX_K", "CollectionToolError", "CollectionTools", "build_mcp", "no_such_collection"]

MAX_K = 50
T = TypeVar("T")

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), Field(description="The collection's name.")
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

INSTRUCTIONS = (
    "Lamina collections are sets of documents. Call list_collections to see them, search to find "
    "passages (with source, page and score), and answer for a grounded answer that cites its "
    "sources as [n]."
)


class CollectionToolError(Exception):
    """A failure the caller can act on (no such collection, a budget spent); its text is the tool's
    error result. Anything else a backend raises is a bug."""


Filter = dict[str, Any] | None
FilterArg = Annotated[
    Filter,
    Field(
        description='Only documents whose metadata matches, e.g. {"team": "finance", "year": {"$gte": 2024}} '
        "($eq, $in, $gt, $gte, $lt, $lte; dates as ISO text)."
    ),
]


def no_such_collection(name: str) -> CollectionToolError:
    """The one message for a collection that is missing or not the caller's to see."""
    return CollectionToolError(f"collection {name!r} does not exist")


class CollectionTools(Protocol):
    """What answers the tools. Inputs arrive validated (non-empty strings, 1 <= k <= MAX_K); an
    unknown collection, or another tenant's, raises ``no_such_collection``."""

    async def list_collections(self) -> list[dict[str, Any]]:
        """Each collection the caller sees: ``name``, ``documents``, ``chunks`` (and ``tenant``)."""
        ...

    async def search(
        self, collection: str, query: str, k: int, filter: Filter = None
    ) -> list[dict[str, Any]]:
        """The best passages first: ``source``, ``title``, ``page``, ``score``, ``text``,
        ``metadata``; ``filter`` keeps documents whose metadata matches (``lamina.data.filters``)."""
        ...

    async def answer(self, collection: str, question: str, filter: Filter = None) -> dict[str, Any]:
        """``answer`` (the text, citing ``[n]``), ``sources`` (``n``, ``source``, ``title``, ``page``,
        ``url``), ``grounded`` and ``model``."""
        ...


def build_mcp(tools: CollectionTools, *, name: str = "lamina") -> MCPServer:
    """An MCP server with the three tools over ``tools``; expected failures become tool errors."""
    with _root_logging_untouched():
        server: MCPServer = MCPServer(name, version=__version__, instructions=INSTRUCTIONS)

    @server.tool()
    async def list_collections() -> dict[str, Any]:
        """List the document collections you can search and ask, with their document and chunk counts."""
        return {"collections": await _run(tools.list_collections())}

    @server.tool()
    async def search(
        collection: Name,
        query: Annotated[Text, Field(description="What to look for.")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many passages.")] = 5,
        filter: FilterArg = None,
    ) -> dict[str, Any]:
        """Search a collection: the passages that best match the query, each with its source, page,
        score and the document's metadata."""
        passages = await _run(tools.search(collection, query, k, filter))
        return {"collection": collection, "passages": passages}

    @server.tool()
    async def answer(
        collection: Name,
        question: Annotated[Text, Field(description="The question to answer.")],
        filter: FilterArg = None,
    ) -> dict[str, Any]:
        """Answer a question from a collection's documents only. The answer cites its sources as [n];
        each source has its file, page and a link."""
        return await _run(tools.answer(collection, question, filter))

    return server


async def _run(call: Awaitable[T]) -> T:
    """A backend's ``CollectionToolError`` as the SDK's ``ToolError``: an error result, not a crash."""
    try:
        return await call
    except CollectionToolError as exc:
        raise ToolError(str(exc)) from exc


@contextmanager
def _root_logging_untouched() -> Iterator[None]:
    """``MCPServer()`` calls ``logging.basicConfig``; the server's and the CLI's logging are their own."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
