"""Installs the OpenTelemetry SDK for ``lamina serve``, only when there is somewhere to send spans.

Spans go over OTLP/HTTP when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``)
variable is set, and to a bounded in-memory ring when ``serve.trace_recent`` > 0 (the web UI shows
a request's spans from it). With neither, no SDK is installed and spans are free no-ops.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from lamina import __version__
from lamina.config import Settings
from lamina.telemetry import REQUEST_ID

OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class RecentSpans(SpanProcessor):
    """The last ``size`` finished spans, as plain dicts, found again by a request's id."""

    def __init__(self, size: int) -> None:
        self._spans: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if ctx is None:
            return
        start, end = span.start_time or 0, span.end_time or 0
        row = {
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
            "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
            "name": span.name,
            "start_time_unix_nano": start,
            "duration_ms": round((end - start) / 1e6, 3),
            "status": span.status.status_code.name.lower(),
            "attributes": dict(span.attributes or {}),
        }
        with self._lock:
            self._spans.append(row)

    def __call__(self, request_id: str) -> list[dict[str, Any]]:
        return self.for_request(request_id)

    def for_request(self, request_id: str) -> list[dict[str, Any]]:
        """The spans of the trace whose root carries ``request_id``, in start order."""
        with self._lock:
            spans = list(self._spans)
        traces = {s["trace_id"] for s in spans if s["attributes"].get(REQUEST_ID) == request_id}
        return sorted((s for s in spans if s["trace_id"] in traces), key=lambda s: s["start_time_unix_nano"])


def exporting() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(os.environ.get(v) for v in OTLP_VARIABLES)


class Tracing:
    """The SDK this process installed (if any): flushed and shut down with the server."""

    def __init__(self, settings: Settings) -> None:
        self.provider: TracerProvider | None = None
        self.recent: RecentSpans | None = None
        keep = settings.serve.trace_recent
        if not exporting() and not keep:
            return
        attributes: dict[str, str] = {SERVICE_VERSION: __version__}
        if not os.environ.get("OTEL_SERVICE_NAME"):
            attributes[SERVICE_NAME] = "lamina"
        provider = TracerProvider(resource=Resource.create(attributes))
        if exporting():
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads OTEL_* itself
        if keep:
            self.recent = RecentSpans(keep)
            provider.add_span_processor(self.recent)
        trace.set_tracer_provider(provider)
        self.provider = provider

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()  # flushes what the batch processor still holds
