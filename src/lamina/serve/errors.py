"""Errors a client gets on purpose, in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Plain exceptions, so the engine side (admission, limits, uploads) raises them without knowing HTTP;
``serve/http/errors.py`` turns them into responses. No message ever includes a key: messages are
built from our own words and request fields.
"""

from __future__ import annotations

from typing import Any

from lamina import errors as lerr


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
    if isinstance(exc, lerr.Overloaded):
        return too_many(str(exc), exc.retry_after, code="model_busy")
    if isinstance(exc, lerr.Unsupported):
        param = "tools" if exc.capability == "tools" else "messages"
        return APIError(400, str(exc), param=param, code="unsupported_capability")
    if isinstance(exc, lerr.ModelUnavailable):
        return APIError(503, str(exc), "upstream_error", code="model_unavailable")
    if isinstance(exc, lerr.GenerationFailed):
        return APIError(502, str(exc), "upstream_error", code="upstream_failed")
    return APIError(400, str(exc))
