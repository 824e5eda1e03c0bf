"""One exception hierarchy for every failure the client reports.

The server answers errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``,
with an ``x-request-id`` header; :func:`error_from_response` maps a status to a class and keeps
those fields. Every class derives from :class:`LaminaError`, itself a ``lamina.LaminaError``.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

from lamina import errors as _lamina_errors

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStreamError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "LaminaError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "ServiceUnavailableError",
    "WaitTimeout",
]


class LaminaError(_lamina_errors.LaminaError):
    """Base class of everything ``lamina.client`` raises."""


class APIConnectionError(LaminaError):
    """The server could not be reached, or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """The request took longer than the client's timeout."""


class WaitTimeout(LaminaError, TimeoutError):
    """``Job.wait(timeout=…)`` ran out before the job ended (the job itself goes on)."""


class APIError(LaminaError):
    """The server answered with an error: its HTTP status and OpenAI-shaped fields."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        where = f", request {self.request_id}" if self.request_id else ""
        return f"{self.message} (HTTP {self.status}{', ' + self.code if self.code else ''}{where})"


class BadRequestError(APIError):
    """400, 413 or 422: the request is invalid (``param`` names the field when known)."""


class AuthenticationError(APIError):
    """401: the key is missing, invalid or revoked."""


class PermissionDeniedError(APIError):
    """403: the key may not do this (an admin-only call, or a model the key may not use)."""


class NotFoundError(APIError):
    """404 (or 410): no such collection, document, job, key or model, or another tenant's."""


class ConflictError(APIError):
    """409: the collection exists already, the job has ended, the job cannot resume."""


class RateLimitError(APIError):
    """429. ``code`` says which limit: ``budget_exceeded``, ``rate_limited``, ``model_busy`` or
    ``upstream_rate_limited``; ``retry_after`` is in seconds (``None``: not before the budget resets)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after

    @property
    def limit(self) -> str | None:
        return self.code


class ServerError(APIError):
    """5xx: the server or its model failed."""


class ServiceUnavailableError(ServerError):
    """503: the server is draining, or a model is unavailable."""


class APIStreamError(ServerError):
    """A stream that had begun (HTTP 200) ended with an error event: the answer is incomplete."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: NotFoundError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date), or ``None``."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed is not None else None


def error_fields(payload: Any) -> dict[str, Any]:
    """``message``, ``type``, ``code`` and ``param`` of an OpenAI-shaped error (or ``{}``)."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return {}
    return {
        k: (str(err[k]) if err.get(k) is not None else None) for k in ("message", "type", "code", "param")
    }


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error response (its body must have been read)."""
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    fields = error_fields(payload)
    message = fields.pop("message", None) or (
        payload if isinstance(payload, str) and payload else response.reason_phrase
    )
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    common: dict[str, Any] = {
        "status": status,
        "request_id": response.headers.get("x-request-id"),
        "body": payload,
        **fields,
    }
    if cls is RateLimitError:
        return RateLimitError(str(message), retry_after=retry_after(response.headers), **common)
    return cls(str(message), **common)


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    err = cls(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    err.__cause__ = exc
    return err
