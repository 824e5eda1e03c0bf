"""The one ASGI middleware every request passes: request id, body cap, draining, request record.

Written as plain ASGI (not BaseHTTPMiddleware) so that it adds little latency and never buffers a
stream. It creates the request's typed :class:`RequestContext` (``request_context`` hands it to the
handlers), which they fill with what the log needs (principal, model, tokens, time to first token);
when the response's last byte has gone out, or the client went away, it runs the context's
cleanups and writes the record.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from opentelemetry import propagate, trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lamina.serve.context import RequestContext
from lamina.serve.observe import logs
from lamina.serve.observe.requestlog import LogRecord
from lamina.telemetry import REQUEST_ID, tracer

LOGGED_PREFIX = ("/v1/", "/mcp")  # the APIs: logged, metered and settled against budgets


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


CONTEXT = "lamina"  # the key of the request's context in the ASGI scope's state


def context_of(scope: Scope) -> RequestContext | None:
    """The context the middleware made for this request; None outside it (a request it refused)."""
    ctx: RequestContext | None = scope.get("state", {}).get(CONTEXT)
    return ctx


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        on_record: Callable[[LogRecord, RequestContext], Awaitable[None]],
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
        request_id = new_request_id()
        ctx = RequestContext(request_id)
        scope.setdefault("state", {})[CONTEXT] = ctx
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
                await ctx.close()
                logged, traced = path.startswith(LOGGED_PREFIX), span.is_recording()
                if logged or traced:
                    record = _record(scope, ctx, status, finished)
                    if traced:
                        _describe(span, record)
                    if logged:
                        await self.on_record(record, ctx)

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


def _record(scope: Scope, ctx: RequestContext, status: int, finished: bool) -> LogRecord:
    principal = ctx.principal
    route = scope.get("route")
    error_type = ctx.error_type
    if not finished and status < 400:
        error_type, status = "client_disconnected", status or 499
    return LogRecord(
        time=datetime.now(UTC).isoformat(timespec="milliseconds"),
        request_id=ctx.request_id,
        method=scope.get("method", ""),
        route=str(getattr(route, "path", scope["path"])),
        status=status or 500,
        latency_ms=round((time.perf_counter() - ctx.started) * 1000, 3),
        key_name=principal.key_name if principal else None,
        tenant=principal.tenant if principal else None,
        model=ctx.model,
        prompt_tokens=ctx.prompt_tokens,
        completion_tokens=ctx.completion_tokens,
        embedding_tokens=ctx.embedding_tokens,
        ttft_ms=ctx.ttft_ms,
        error_type=error_type,
        cached=ctx.cached,
        finish_reason=ctx.finish_reason,
        tool_calls=len(ctx.tool_calls),
        tool_names=",".join(dict.fromkeys(ctx.tool_calls)) or None,
    )
