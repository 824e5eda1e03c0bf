"""One mapping from failures to OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}``.

Handlers raise ``APIError`` (or a ``LaminaError`` the engine raised on purpose); anything else is a
bug, answered with a 500 that carries only the request id, which is also in the server log with the
traceback. No message ever includes a key: messages are built from our own words and request fields.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lamina import errors as lerr

log = logging.getLogger("lamina.serve")


class APIError(Exception):
    """An answer the client gets on purpose: a status, an OpenAI error type and a message."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def not_found(what: str, name: str, *, param: str | None = None) -> APIError:
    return APIError(404, f"{what} {name!r} does not exist", "not_found_error", param=param, code="not_found")


def bad_request(message: str, *, param: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param=param)


def too_many(message: str, retry_after: float, *, code: str = "rate_limited") -> APIError:
    return APIError(
        429, message, "rate_limit_error", code=code, headers={"Retry-After": str(max(1, round(retry_after)))}
    )


def from_lamina(exc: lerr.LaminaError) -> APIError:
    """An engine error raised on purpose -> the status a client can act on."""
    if isinstance(exc, lerr.CollectionNotFound):
        return APIError(
            404, "collection does not exist", "not_found_error", param="collection", code="not_found"
        )
    if isinstance(exc, lerr.UnknownModel):
        return APIError(404, str(exc), "not_found_error", param="model", code="model_not_found")
    if isinstance(exc, lerr.PromptTooLong):
        return APIError(400, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, lerr.ModelUnavailable):
        return APIError(503, str(exc), "upstream_error", code="model_unavailable")
    if isinstance(exc, lerr.GenerationFailed):
        return APIError(502, str(exc), "upstream_error", code="upstream_failed")
    return APIError(400, str(exc))


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return (f"{param}: {msg}" if param else msg), param


def _respond(request: Request, err: APIError) -> JSONResponse:
    request.state.error_type = err.type  # for the request log
    return err.response()


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

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "-")
        log.error("request %s failed", request_id, exc_info=(type(exc), exc, exc.__traceback__))
        err = APIError(500, f"internal error; request id {request_id}", "server_error", code="internal_error")
        err.headers["x-request-id"] = request_id  # answered outside the gateway middleware, which adds it
        return _respond(request, err)
