"""What a refusal from the services (or the API's request models) says, for a page to show."""

from __future__ import annotations

from pydantic import ValidationError

from lamina.errors import LaminaError
from lamina.serve.errors import APIError, from_lamina

Refusal = APIError | LaminaError | ValidationError


def problem(exc: Refusal) -> tuple[int, str]:
    """(HTTP status, message)."""
    if isinstance(exc, APIError):
        return exc.status, exc.message
    if isinstance(exc, LaminaError):
        err = from_lamina(exc)
        return err.status, err.message
    errors = exc.errors()
    if not errors:
        return 400, str(exc)
    first = errors[0]
    field = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return 400, f"{field}: {message}" if field else message
