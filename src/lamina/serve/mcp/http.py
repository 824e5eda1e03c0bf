"""``/mcp``: the MCP tools over Streamable HTTP, inside the app, as the caller's key.

Stateless and JSON-response: every POST carries its own key and gets its whole answer, so any
replica can serve any request and nothing is kept between them. The endpoint authenticates the key
(401 without a good one), names the principal in the request's context (the request log, budgets),
and binds the caller's tools for the SDK's handlers; the gateway middleware around it logs and
meters the request like any API call. The SDK's session manager needs a running task group:
``running()`` is entered in the app's lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lamina.mcp.tools import build_mcp
from lamina.serve.errors import APIError
from lamina.serve.http.middleware import context_of
from lamina.serve.mcp.tools import RequestTools, ServerTools, current
from lamina.serve.state import ServerState

__all__ = ["PATH", "McpEndpoint"]

PATH = "/mcp"


OPENAPI: dict[str, Any] = {
    "post": {
        "tags": ["MCP"],
        "summary": "Collections as MCP tools: list_collections, search, answer (Streamable HTTP)",
        "description": "JSON-RPC messages of the Model Context Protocol (stateless, JSON answers), for an "
        "MCP client: the key as `Authorization: Bearer` (or `x-api-key`); a key sees its tenant's "
        "collections, and `answer` is budgeted like any generation. See docs/mcp.md.",
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {
            "200": {"description": "The JSON-RPC response"},
            "401": {"description": "Missing or invalid key"},
        },
    }
}


def _documented(app: FastAPI) -> None:
    """``/mcp`` in the app's OpenAPI document (/docs), beside the routes FastAPI describes itself."""
    describe = app.openapi

    def openapi() -> dict[str, Any]:
        schema = describe()
        schema["paths"][PATH] = OPENAPI
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class McpEndpoint:
    """The ASGI app at ``/mcp`` (a plain route, so the request log names it ``/mcp``)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.server: MCPServer = build_mcp(RequestTools())
        self._manager: StreamableHTTPSessionManager | None = None

    @classmethod
    def mount(cls, app: FastAPI, state: ServerState) -> McpEndpoint:
        endpoint = cls(state)
        app.router.routes.append(Route(PATH, endpoint, include_in_schema=False))
        _documented(app)
        return endpoint

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The SDK's session manager for one run of the app (a manager runs once, so a fresh one)."""
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            # every request needs a key, which a rebound DNS name cannot borrow; and the server may
            # be behind any host name
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=int(self.state.settings.serve.max_body_kb * 1024),
        )
        manager = self.server.session_manager
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        ctx = context_of(scope)
        manager = self._manager
        if manager is None or ctx is None:
            await JSONResponse({"error": {"message": "MCP is not running"}}, status_code=503)(
                scope, receive, send
            )
            return
        try:
            principal = await self.state.auth(request)  # sets ctx.principal for the request log
        except APIError as exc:
            ctx.error_type = exc.type
            headers = {**exc.headers, "WWW-Authenticate": "Bearer"} if exc.status == 401 else exc.headers
            await JSONResponse(exc.body(), status_code=exc.status, headers=headers)(scope, receive, send)
            return
        token = current.set(ServerTools(self.state, principal, ctx, str(request.base_url)))
        try:
            await manager.handle_request(scope, receive, send)
        finally:
            current.reset(token)
