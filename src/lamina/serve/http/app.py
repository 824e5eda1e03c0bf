"""The ASGI app: routers, the gateway middleware, errors in OpenAI's shape, start-up and shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from lamina import __version__
from lamina.serve.anthropic import routes as anthropic_routes
from lamina.serve.context import RequestContext
from lamina.serve.http import errors
from lamina.serve.http.middleware import GatewayMiddleware
from lamina.serve.mcp.http import McpEndpoint
from lamina.serve.native import admin, collections, sources, versions
from lamina.serve.observe.requestlog import LogRecord
from lamina.serve.openai import routes as openai_routes
from lamina.serve.openai.serving_embedding import embedding_names
from lamina.serve.policy.costs import price
from lamina.serve.responses import routes as responses_routes
from lamina.serve.state import ServerState

UPLOAD_SUFFIX = "/documents"
requests_log = logging.getLogger("lamina.requests")  # one line per API request (never a key)
SESSION_COOKIE = "lamina_session"


Extension = Callable[[FastAPI, ServerState], None]


def build_app(state: ServerState, extend: Extension | None = None) -> FastAPI:
    """One app over one ``ServerState``; tests build it with their own state and embedder.

    ``extend`` adds routes from a layer above (the web UI); its routes come before the plain
    ``/`` and ``/login`` here, so it may replace them.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        app.state.ready = True
        try:
            async with mcp_endpoint.running():  # the MCP SDK's session manager, for /mcp
                yield
        finally:
            state.draining = True
            await state.stop()

    app = FastAPI(
        title="Lamina",
        version=__version__,
        summary="OpenAI-compatible gateway with grounded answers over your documents.",
        lifespan=lifespan,
    )
    app.state.lamina = state
    app.state.ready = False
    errors.install(app)
    app.include_router(openai_routes.router)
    app.include_router(responses_routes.router)
    app.include_router(anthropic_routes.router)
    app.include_router(collections.router)
    app.include_router(versions.router)
    app.include_router(sources.router)
    app.include_router(admin.router)
    mcp_endpoint = McpEndpoint.mount(app, state)
    serve = state.settings.serve

    def body_limit(path: str) -> int:
        if path.endswith(UPLOAD_SUFFIX):
            return int(serve.max_request_mb * 1024 * 1024)
        return int(serve.max_body_kb * 1024)

    json_lines = serve.log_format == "json"

    async def on_record(record: LogRecord, ctx: RequestContext) -> None:
        record.cost_usd = price(state.settings, record, set(embedding_names(state)))
        state.request_log.add(record)
        state.metrics.observe(record, ctx)
        if json_lines:  # for a log collector; people read the request log (`lamina logs`)
            requests_log.info(
                "%s %s %s %.1fms",
                record.method,
                record.route,
                record.status,
                record.latency_ms,
                extra={k: v for k, v in asdict(record).items() if k not in ("time", "request_id")},
            )
        await state.limiter.settle(ctx, record)

    app.add_middleware(
        GatewayMiddleware,
        on_record=on_record,
        body_limit=body_limit,
        draining=lambda: state.draining,
    )

    @app.get("/health", tags=["Health"], summary="200 once the server is up and not draining")
    async def health() -> JSONResponse:
        if state.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get(
        "/ready", tags=["Health"], summary="200 when the default model answers and the server is not draining"
    )
    async def ready() -> JSONResponse:
        if state.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        problems = await state.gateway.unreachable()
        if problems:
            return JSONResponse({"status": "unavailable", "models": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["Health"], summary="Prometheus metrics (a key unless serve.public_metrics)")
    async def metrics(request: Request) -> Response:
        if not serve.public_metrics:
            await state.auth(request)
        body = await asyncio.to_thread(state.metrics.exposition)  # budgets are read from the store
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    if extend is not None:
        extend(app, state)

    @app.get("/login", include_in_schema=False)
    async def login(request: Request, key: str = "") -> Response:
        """The link ``lamina serve`` prints: keeps the key in an HttpOnly cookie, then goes home."""
        principal = await state.auth.verify(key) if key else None
        if principal is None:
            return HTMLResponse("<h1>Invalid or revoked key</h1>", status_code=401)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(
            SESSION_COOKIE, key, httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
        return resp

    @app.get("/", include_in_schema=False)
    async def home() -> dict[str, Any]:
        return {"name": "Lamina", "version": __version__, "api": "/v1", "docs": "/docs"}

    return app
