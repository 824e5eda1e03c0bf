"""The web UI: server-rendered pages (Jinja2 + htmx) over the same state as the API.

``install`` adds the UI's routes to the server's app; ``lamina serve`` passes it to the server, so
the deployment layer never imports the interface layer. Pages are split by what they show:
``routes/auth`` (sign in and out), ``routes/chat``, ``routes/collections`` (and its ``routes/sources``),
``routes/usage`` and ``routes/keys``; templates and static files sit next to them.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from lamina.serve.state import ServerState
from lamina.ui.assets import Assets
from lamina.ui.context import UI
from lamina.ui.csrf import Csrf, CsrfError
from lamina.ui.pages import Pages, is_htmx
from lamina.ui.routes import auth, chat, collections, keys, sources, usage
from lamina.ui.session import LoginRequired
from lamina.ui.store import ConversationStore
from lamina.ui.traces import spans_for, waterfall

__all__ = ["install", "spans_for", "waterfall"]


def install(app: FastAPI, state: ServerState) -> None:
    """Add the UI's pages to ``app``: ``/`` (chat), ``/collections``, ``/usage``, ``/keys``, ``/login``."""
    assets = Assets()
    ui = UI(state, Csrf(), assets, Pages(assets), ConversationStore(state.engine))
    app.state.lamina_ui = ui

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = "/login?next=" + quote(request.url.path, safe="/")
        if is_htmx(request):  # htmx follows this header with a full page load
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.headers.get("accept", "").startswith("text/event-stream"):
            return Response("sign in again", status_code=401, media_type="text/plain")
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(CsrfError)
    async def _csrf(request: Request, exc: CsrfError) -> Response:
        message = (
            "This form was refused: it did not carry this session's security token. "
            "Reload the page and try again."
        )
        return ui.pages.render(request, "error.html", status=403, message=message)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(request: Request, name: str) -> Response:
        return assets.response(request, name)

    for router in (auth.router, chat.router, collections.router, sources.router, usage.router, keys.router):
        app.include_router(router)
