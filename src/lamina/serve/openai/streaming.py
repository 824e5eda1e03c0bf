"""Server-sent events in OpenAI's exact wire format.

``data: {json}\\n\\n`` events; the first delta carries the role; ``finish_reason`` appears once;
with ``include_usage`` every chunk has ``"usage": null`` and one extra chunk with ``"choices": []``
carries the usage just before ``data: [DONE]``; without it there is no usage field at all. A failure
mid-stream ends with an error event and no ``[DONE]``: never a clean stop on a truncated answer.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from lamina.models.types import Usage

DONE = b"data: [DONE]\n\n"
CACHE_HEADER = "x-lamina-cache"  # hit or miss, on requests the cache can answer
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def completion_id(kind: Literal["chat", "completion"]) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def error_event(message: str, type_: str = "upstream_error", code: str = "stream_interrupted") -> bytes:
    return event({"error": {"message": message, "type": type_, "param": None, "code": code}})


class ChunkWriter:
    """Builds the chunks of one streamed response (chat or text completion)."""

    def __init__(self, kind: Literal["chat", "completion"], model: str, *, include_usage: bool) -> None:
        self.kind = kind
        self.id = completion_id(kind)
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.object = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            data["usage"] = None
        return data

    def role(self) -> bytes:
        """The first chunk of a chat stream: the role, no content yet."""
        return event(self._chunk([self._choice({"role": "assistant", "content": ""}, None)]))

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return event(self._chunk([self._choice(delta, finish_reason)]))

    def usage(self, usage: Usage) -> bytes:
        data = self._chunk([])
        data["usage"] = usage.to_dict()
        return event(data)

    async def replay(self, delta: dict[str, Any], finish_reason: str, usage: Usage) -> AsyncIterator[bytes]:
        """A whole answer (cached, or decided without the model) as one stream."""
        if self.kind == "chat":
            yield self.role()
        yield self.delta(delta, finish_reason)
        if self.include_usage:
            yield self.usage(usage)
        yield DONE

    def _choice(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        if self.kind == "chat":
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {
            "index": 0,
            "text": delta.get("content", ""),
            "logprobs": None,
            "finish_reason": finish_reason,
        }
