"""Server-sent events carrying HTML for the htmx SSE extension (``sse-swap="NAME"``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from lamina.serve.openai.streaming import SSE_HEADERS


def event(name: str, html: str) -> bytes:
    """One event; a multi-line payload is one ``data:`` line per line (the browser joins them)."""
    lines = html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return (f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


def stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
