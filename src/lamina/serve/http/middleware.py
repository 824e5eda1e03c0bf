"""The one ASGI middleware every request passes: request id, body cap, draining, request record.

Written as plain ASGI (not BaseHTTPMiddleware) so that it adds little latency and never buffers a
stream. Handlers leave what the log needs (principal, model, tokens, time to first token) in
``request.state``; the record is written when the response's last byte has gone out, or when the
client went away.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate, trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lamina.serve.observe import logs
from lamina.serve.observe.requestlog import LogRecord
from lamina.telemetry import REQUEST_ID, tracer

LOGGED_PREFIX = "/v1/"


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


Cleanup = Callable[[], Awaitable[None]]


def on_exit(state: Any, cleanup: Cleanup) -> None:
    """Run ``cleanup`` when the request is over, however it ended (a stream never started included)."""
    callbacks: list[Cleanup] = state._state.setdefault("cleanup", [])
    callbacks.append(cleanup)


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        on_record: Callable[[LogRecord, dict[str, Any]], Awaitable[None]],
        body_limit: Callable[[str], int],
        draining: Callable[[], bool],
    ) -> None:
        self.app = app
        self.on_record = on_record
        self.body_limit = body_limit
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = new_request_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        path: str = scope["path"]
        status = 0
        finished = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        refusal = self._refusal(scope, path)
        logs.request_id.set(request_id)
        method = scope.get("method", "")
        with tracer.start_as_current_span(
            f"{method} {path}",
            context=propagate.extract(_headers(scope)),  # a caller's traceparent continues its trace
            kind=trace.SpanKind.SERVER,
            attributes={REQUEST_ID: request_id, "http.request.method": method, "url.path": path},
        ) as span:
            try:
                if refusal is not None:
                    await _send_error(send_with_id, *refusal)
                else:
                    await self.app(scope, receive, send_with_id)
            finally:
                for cleanup in state.get("cleanup", ()):
                    await cleanup()
                logged, traced = path.startswith(LOGGED_PREFIX), span.is_recording()
                if logged or traced:
                    record = _record(scope, state, request_id, status, started, finished)
                    if traced:
                        _describe(span, record)
                    if logged:
                        await self.on_record(record, state)

    def _refusal(self, scope: Scope, path: str) -> tuple[int, str, str, str] | None:
        if self.draining() and path not in ("/health", "/ready"):
            return 503, "the server is shutting down; retry on another instance", "server_error", "draining"
        length = _content_length(scope)
        limit = self.body_limit(path)
        if length is not None and length > limit:
            return (
                413,
                f"request body is {length / 1e6:.1f} MB, over this endpoint's limit of {limit / 1e6:.1f} MB",
                "invalid_request_error",
                "request_too_large",
            )
        return None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}


def _describe(span: trace.Span, rec: LogRecord) -> None:
    """The server span, named by route template (bounded) once routing has found it."""
    span.update_name(f"{rec.method} {rec.route}")
    span.set_attribute("http.route", rec.route)
    span.set_attribute("http.response.status_code", rec.status)
    for name, value in (("lamina.key_name", rec.key_name), ("lamina.tenant", rec.tenant)):
        if value:
            span.set_attribute(name, value)
    if rec.status >= 500:
        span.set_status(trace.StatusCode.ERROR)
    if rec.error_type:
        span.set_attribute("error.type", rec.error_type)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Send, status: int, message: str, type_: str, code: str) -> None:
    body = json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _record(
    scope: Scope, state: dict[str, Any], request_id: str, status: int, started: float, finished: bool
) -> LogRecord:
    principal = state.get("principal")
    route = scope.get("route")
    error_type = state.get("error_type")
    if not finished and status < 400:
        error_type, status = "client_disconnected", status or 499
    return LogRecord(
        time=datetime.now(UTC).isoformat(timespec="milliseconds"),
        request_id=request_id,
        method=scope.get("method", ""),
        route=str(getattr(route, "path", scope["path"])),
        status=status or 500,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        key_name=getattr(principal, "key_name", None),
        tenant=getattr(principal, "tenant", None),
        model=state.get("model"),
        prompt_tokens=int(state.get("prompt_tokens", 0)),
        completion_tokens=int(state.get("completion_tokens", 0)),
        embedding_tokens=int(state.get("embedding_tokens", 0)),
        ttft_ms=state.get("ttft_ms"),
        error_type=error_type,
        cached=bool(state.get("cached", False)),
    )
