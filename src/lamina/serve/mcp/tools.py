"""``CollectionTools`` answered by this server's services, as the key of the HTTP request.

The same calls as the API routes: the collection service (another tenant's collection is a 404),
and for ``answer`` the grounded-answer path of grounded chat, so admission, budgets, the fair
queue and metering apply and land in the request's ``RequestContext`` (the request log, metrics).
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable
from typing import Any, TypeVar

from lamina.errors import LaminaError
from lamina.mcp.tools import CollectionToolError, CollectionTools, Filter, no_such_collection
from lamina.serve.context import RequestContext
from lamina.serve.errors import APIError, from_lamina
from lamina.serve.openai.grounded import ground, grounded_answer
from lamina.serve.openai.serving import deployment_for, rag_model
from lamina.serve.policy.keys import Principal
from lamina.serve.state import ServerState

__all__ = ["RequestTools", "ServerTools", "current"]

T = TypeVar("T")


class ServerTools:
    """The tools for one principal; what they cost is metered into ``ctx``."""

    def __init__(self, state: ServerState, principal: Principal, ctx: RequestContext, base_url: str) -> None:
        self.state = state
        self.principal = principal
        self.ctx = ctx
        self.base_url = base_url  # where citation links point

    async def list_collections(self) -> list[dict[str, Any]]:
        self.ctx.tool_calls.append("list_collections")
        found = await _call(self.state.services.collections.list(self.principal))
        return [
            {"name": c["name"], "tenant": c["tenant"], "documents": c["documents"], "chunks": c["chunks"]}
            for c in found
        ]

    async def search(
        self, collection: str, query: str, k: int, filter: Filter = None
    ) -> list[dict[str, Any]]:
        self.ctx.tool_calls.append("search")
        service = self.state.services.collections
        hits = await _call(service.search(self.principal, collection, query, k=k, filter=filter), collection)
        keys = ("source", "title", "page", "score", "text", "metadata")
        return [{key: h.get(key) for key in keys} for h in hits]

    async def answer(self, collection: str, question: str, filter: Filter = None) -> dict[str, Any]:
        self.ctx.tool_calls.append("answer")
        state, principal = self.state, self.principal
        coll = await _call(state.services.collections.open(principal, collection), collection)
        dep = await _call(deployment_for(state, principal, rag_model(state, coll.name)))
        found_sources = ground(state, principal, dep, coll, question, base_url=self.base_url, filter=filter)
        grounding = await _call(found_sources)
        model, found = await _call(grounded_answer(state, principal, self.ctx, dep, grounding))
        sources = [
            {key: c.get(key) for key in ("n", "source", "title", "page", "url")}
            for c in grounding.links.citations(found)
        ]
        return {"answer": found.answer, "sources": sources, "grounded": found.grounded, "model": model}


async def _call(call: Awaitable[T], collection: str | None = None) -> T:
    """A refusal (404, 403, 429 budget) as the tool's error: a missing collection in one wording."""
    try:
        return await call
    except APIError as exc:
        if exc.status == 404 and collection is not None and exc.code != "model_not_found":
            raise no_such_collection(collection) from None
        raise CollectionToolError(exc.message) from None
    except LaminaError as exc:  # raised on purpose by the engine: the status a client can act on
        raise CollectionToolError(from_lamina(exc).message) from None


current: contextvars.ContextVar[ServerTools] = contextvars.ContextVar("lamina_mcp_tools")


class RequestTools:
    """The tools of the HTTP request being served (``current``, set by the ``/mcp`` endpoint): the one
    MCP server serves every key, each call as its own request's principal."""

    def _tools(self) -> CollectionTools:
        try:
            return current.get()
        except LookupError:  # a call outside an authenticated /mcp request: never anyone's data
            raise CollectionToolError("not authenticated") from None

    async def list_collections(self) -> list[dict[str, Any]]:
        return await self._tools().list_collections()

    async def search(
        self, collection: str, query: str, k: int, filter: Filter = None
    ) -> list[dict[str, Any]]:
        return await self._tools().search(collection, query, k, filter)

    async def answer(self, collection: str, question: str, filter: Filter = None) -> dict[str, Any]:
        return await self._tools().answer(collection, question, filter)
