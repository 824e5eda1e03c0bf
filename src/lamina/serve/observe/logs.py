"""Server logs: one line per event, as text or JSON lines, each with the request id it belongs to.

The request id rides in a context variable set by the middleware, so any log call made while
serving a request (a traceback for a 500 included) carries it without being passed around. Keys
are never logged: records name the key, never its secret.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("lamina_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or "-"
        return True


def handler(fmt: Literal["text", "json"]) -> logging.Handler:
    out = logging.StreamHandler()
    out.addFilter(_RequestId())
    if fmt == "json":
        out.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time"}))
    else:
        out.setFormatter(logging.Formatter(TEXT_FORMAT))
    return out


def uvicorn_log_config(fmt: Literal["text", "json"], level: str) -> dict[str, Any]:
    """uvicorn's and Lamina's loggers through one handler of the chosen format."""
    handler_spec: dict[str, Any] = {"()": handler, "fmt": fmt}
    names = ("uvicorn", "uvicorn.error", "lamina")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"default": handler_spec},
        "loggers": {n: {"handlers": ["default"], "level": level.upper(), "propagate": False} for n in names},
    }
