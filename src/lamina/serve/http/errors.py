"""One mapping from failures to OpenAI-shaped error responses.

Handlers raise ``APIError`` (or a ``LaminaError`` the engine raised on purpose); anything else is a
bug, answered with a 500 that carries only the request id, which is also in the server log with the
traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from lamina import errors as lerr
from lamina.serve.anthropic.routes import PREFIX as ANTHROPIC_PREFIX
from lamina.serve.errors import APIError, bad_request, from_lamina
from lamina.serve.http.middleware import context_of

__all__ = ["install"]

log = logging.getLogger("lamina.serve")


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return (f"{param}: {msg}" if param else msg), param


# Anthropic's error types, by status (its API reference)
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def _respond(request: Request, err: APIError) -> JSONResponse:
    ctx = context_of(request.scope)
    if ctx is not None:
        ctx.error_type = err.type  # for the request log
    body = err.body()
    if request.url.path.startswith(ANTHROPIC_PREFIX):  # each API's own error shape
        kind = ANTHROPIC_TYPES.get(err.status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": err.message}}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def install(app: FastAPI) -> None:
    """Every error path of the app answers in OpenAI's shape."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return _respond(request, exc)

    @app.exception_handler(lerr.LaminaError)
    async def _lamina_error(request: Request, exc: lerr.LaminaError) -> JSONResponse:
        return _respond(request, from_lamina(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return _respond(request, bad_request(message, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}
        err = APIError(exc.status_code, str(exc.detail), kinds.get(exc.status_code, "invalid_request_error"))
        err.headers = dict(exc.headers or {})
        return _respond(request, err)

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    async def _database_away(request: Request, exc: sa_exc.DBAPIError) -> JSONResponse:
        log.warning("the database is unreachable: %s", str(exc.orig or exc).strip().splitlines()[0][:200])
        err = APIError(
            503,
            "the database is unreachable; retry shortly",
            "service_unavailable",
            code="database_unavailable",
            headers={"Retry-After": "2"},
        )
        return _respond(request, err)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        ctx = context_of(request.scope)
        request_id = ctx.request_id if ctx is not None else "-"
        log.error("request %s failed", request_id, exc_info=(type(exc), exc, exc.__traceback__))
        err = APIError(500, f"internal error; request id {request_id}", "server_error", code="internal_error")
        err.headers["x-request-id"] = request_id  # answered outside the gateway middleware, which adds it
        return _respond(request, err)
