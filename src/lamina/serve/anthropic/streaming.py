"""Anthropic's streamed events, written from the engine's pieces.

``message_start``; per content block ``content_block_start``, its deltas (``text_delta``, or
``input_json_delta`` with the tool input's JSON pieces as the model writes them) and
``content_block_stop``; then ``message_delta`` with the stop reason and usage, and ``message_stop``.
A stream the model breaks ends with an ``error`` event and no ``message_stop``: never a clean stop.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from lamina.engine.events import Piece, Result
from lamina.models.types import Usage
from lamina.serve.anthropic.protocol import message_id, stop_reason


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def error_event(message: str, kind: str = "api_error") -> bytes:
    return event("error", {"type": "error", "error": {"type": kind, "message": message}})


class BlockWriter:
    """One streamed message: pieces of the first choice in, Anthropic's events out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = message_id()
        self._index = -1  # the open content block, -1 before the first
        self._open: str | None = None  # "text" or "tool_use"
        self._call: int | None = None  # the tool call (its index among the choice's calls) being written

    def start(self, usage: Usage | None = None) -> bytes:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": usage.prompt_tokens if usage else 0, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": message})

    def _begin(self, block: dict[str, Any]) -> Iterator[bytes]:
        yield from self._close()
        self._index += 1
        self._open = block["type"]
        yield event(
            "content_block_start",
            {"type": "content_block_start", "index": self._index, "content_block": block},
        )

    def _event(self, name: str, **fields: Any) -> bytes:
        """An event about the open content block."""
        return event(name, {"type": name, "index": self._index, **fields})

    def _close(self) -> Iterator[bytes]:
        if self._open is not None:
            yield self._event("content_block_stop")
            self._open = None

    def piece(self, piece: Piece) -> Iterator[bytes]:
        if piece.index != 0:
            return
        if piece.text:
            if self._open != "text":
                yield from self._begin({"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": piece.text}
            yield event(
                "content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta}
            )
        for call in piece.tool_calls:
            number = call.get("index", 0)
            function = call.get("function") or {}
            if self._open != "tool_use" or number != self._call:
                self._call = number
                block: dict[str, Any] = {
                    "type": "tool_use",
                    "id": call.get("id") or "",
                    "name": function.get("name") or "",
                    "input": {},
                }
                yield from self._begin(block)
            if arguments := function.get("arguments"):
                delta = {"type": "input_json_delta", "partial_json": arguments}
                yield event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": self._index, "delta": delta},
                )

    def finish(self, finish_reason: str, usage: Usage) -> Iterator[bytes]:
        yield from self._close()
        delta = {"stop_reason": stop_reason(finish_reason), "stop_sequence": None}
        tokens = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
        yield event("message_delta", {"type": "message_delta", "delta": delta, "usage": tokens})
        yield event("message_stop", {"type": "message_stop"})

    async def replay(self, result: Result) -> AsyncIterator[bytes]:
        """A whole answer (a cached one) as one stream: each block whole, in one delta."""
        choice = result.first
        yield self.start(result.usage)
        calls = [{"index": i, **c} for i, c in enumerate(choice.message.get("tool_calls") or [])]
        for chunk in self.piece(Piece({"content": choice.text, "tool_calls": calls})):
            yield chunk
        for chunk in self.finish(choice.finish_reason, result.usage):
            yield chunk
