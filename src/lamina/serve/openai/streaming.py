"""Server-sent events in OpenAI's exact wire format.

``data: {json}\\n\\n`` events; the first delta carries the role; ``finish_reason`` appears once;
with ``include_usage`` every chunk has ``"usage": null`` and one extra chunk with ``"choices": []``
carries the usage just before ``data: [DONE]``; without it there is no usage field at all. A failure
mid-stream ends with an error event and no ``[DONE]``: never a clean stop on a truncated answer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel

from lamina.engine.events import Choice
from lamina.models.types import Usage
from lamina.serve.openai.protocol import (
    ChatCompletionChunk,
    ChunkChoice,
    Completion,
    CompletionChoice,
    ErrorInfo,
    ErrorResponse,
    UsageInfo,
)

DONE = b"data: [DONE]\n\n"
CACHE_HEADER = "x-lamina-cache"  # hit or miss, on requests the cache can answer
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def completion_id(kind: Literal["chat", "completion"]) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)


def event(data: BaseModel, *, exclude: set[str] | None = None) -> bytes:
    return b"data: " + data.model_dump_json(exclude=exclude).encode() + b"\n\n"


def usage_info(usage: Usage) -> UsageInfo:
    return UsageInfo(**usage.to_dict())


def error_event(message: str, type_: str = "upstream_error", code: str = "stream_interrupted") -> bytes:
    return event(ErrorResponse(error=ErrorInfo(message=message, type=type_, code=code)))


class ChunkWriter:
    """Builds the chunks of one streamed response (chat or text completion)."""

    def __init__(self, kind: Literal["chat", "completion"], model: str, *, include_usage: bool) -> None:
        self.kind = kind
        self.id = completion_id(kind)
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        # with include_usage every chunk says "usage": null; without it there is no usage field
        self._exclude = None if include_usage else {"usage"}

    def _chunk(
        self,
        delta: dict[str, Any] | None,
        finish_reason: str | None,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        chunk: BaseModel
        if self.kind == "chat":
            choices = (
                []
                if delta is None
                else [ChunkChoice(index=index, delta=delta, logprobs=logprobs, finish_reason=finish_reason)]
            )
            chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices)
        else:
            text = "" if delta is None else str(delta.get("content", ""))
            chunk = Completion(
                id=self.id,
                created=self.created,
                model=self.model,
                choices=[]
                if delta is None
                else [
                    CompletionChoice(index=index, text=text, logprobs=logprobs, finish_reason=finish_reason)
                ],
            )
        return event(chunk, exclude=self._exclude)

    def role(self, index: int = 0) -> bytes:
        """The first chunk of a chat stream (of each choice): the role, no content yet."""
        return self._chunk({"role": "assistant", "content": ""}, None, index)

    def delta(
        self,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        return self._chunk(delta, finish_reason, index, logprobs)

    def usage(self, usage: Usage) -> bytes:
        """The last chunk before ``[DONE]`` when ``include_usage``: no choices, the usage."""
        if self.kind == "chat":
            chunk: BaseModel = ChatCompletionChunk(
                id=self.id, created=self.created, model=self.model, choices=[], usage=usage_info(usage)
            )
        else:
            chunk = Completion(
                id=self.id, created=self.created, model=self.model, choices=[], usage=usage_info(usage)
            )
        return event(chunk)

    async def replay(self, choices: list[Choice], usage: Usage) -> AsyncIterator[bytes]:
        """Whole answers (cached, or decided without the model) as one stream: per choice its role,
        one delta with everything (tool calls with their index, as streamed ones have), its finish."""
        for choice in choices:
            if self.kind == "chat":
                yield self.role(choice.index)
            delta = {k: v for k, v in choice.message.items() if k != "role" and v is not None}
            if "tool_calls" in delta:
                delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(delta["tool_calls"])]
            yield self.delta(delta, choice.finish_reason, choice.index, choice.logprobs)
        if self.include_usage:
            yield self.usage(usage)
        yield DONE
