"""Server-sent events as OpenAI streams them: one parser for the model layer, the server, the UI and the SDK.

A stream is ``data: {json}`` lines ending with ``data: [DONE]``. An event carrying ``error`` is a
failure mid-stream, and a stream that ends without ``[DONE]`` was cut off: both raise
:class:`StreamError`, so no caller can mistake a truncated answer for a finished one. Each caller
turns it into its own error (``UpstreamError`` in the gateway, ``GenerationFailed`` in the model
layer, ``APIStreamError`` in the SDK).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

DONE = "[DONE]"


class StreamError(Exception):
    """The stream failed: an error event (``event`` holds it), an invalid event, or an early end."""

    def __init__(
        self, message: str, event: dict[str, Any] | None = None, *, incomplete: bool = False
    ) -> None:
        super().__init__(message)
        self.event = event
        self.incomplete = incomplete


def data_of(line: str) -> str | None:
    """The payload of a ``data:`` line; ``None`` for any other line (comments, ``event:``, blanks)."""
    return line[5:].strip() if line.startswith("data:") else None


def error_message(event: dict[str, Any]) -> str:
    err = event.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)[:300]
    return str(err or event)[:300]


class EventDecoder:
    """Fed the lines of one stream, returns each event's JSON; ``done`` once ``[DONE]`` came."""

    def __init__(self) -> None:
        self.done = False

    def feed(self, line: str) -> dict[str, Any] | None:
        payload = data_of(line)
        if payload is None or not payload:
            return None
        if payload == DONE:
            self.done = True
            return None
        try:
            event: dict[str, Any] = json.loads(payload)
        except ValueError:
            raise StreamError("the stream sent an invalid event") from None
        if event.get("error"):
            raise StreamError(error_message(event), event)
        return event

    def finish(self) -> None:
        if not self.done:
            raise StreamError("the stream ended before it was complete", incomplete=True)


def events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    decoder = EventDecoder()
    for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event
        elif decoder.done:
            return
    decoder.finish()


async def aevents(lines: AsyncIterable[str]) -> AsyncIterator[dict[str, Any]]:
    decoder = EventDecoder()
    async for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event
        elif decoder.done:
            return
    decoder.finish()
