"""The LLM seam: one interface for a local llama.cpp model and a remote OpenAI-compatible one."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from lamina.config import ModelSettings
from lamina.errors import GenerationFailed
from lamina.models.types import Generation, GenerationRequest, StreamEvent, Usage


@runtime_checkable
class LLM(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def context_window(self) -> int:
        """Tokens one request may use, prompt and completion together."""
        ...

    @property
    def is_chat(self) -> bool:
        """Instruction-tuned chat model; otherwise prompts are completion-style."""
        ...

    def generate(self, request: GenerationRequest) -> Generation: ...

    def stream(self, request: GenerationRequest) -> Iterator[StreamEvent]: ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's own tokenizer (for packing context into the window)."""
        ...

    def close(self) -> None: ...


class ConfiguredModel:
    """What every backend shares: a name and the ``[models.NAME]`` settings it was declared with."""

    def __init__(self, name: str, settings: ModelSettings) -> None:
        self._name = name
        self.settings = settings

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return self.settings.context_window

    @property
    def is_chat(self) -> bool:
        return self.settings.chat

    def sampling(self, request: GenerationRequest) -> dict[str, Any]:
        """The request's sampling parameters, each unset one taken from the model's configuration."""
        s = self.settings
        params: dict[str, Any] = {
            "max_tokens": request.max_tokens or s.max_tokens,
            "temperature": s.temperature if request.temperature is None else request.temperature,
            "top_p": request.top_p or s.top_p,
            "stop": request.stop if request.stop is not None else s.stop,
        }
        if request.seed is not None:
            params["seed"] = request.seed
        return params


def _usage(data: dict[str, Any]) -> Usage:
    usage = data.get("usage") or {}
    return Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))


def generation_from_response(data: dict[str, Any], model: str, chat: bool, started: float) -> Generation:
    """An OpenAI-shaped (chat) completion response -> ``Generation`` (llama.cpp and HTTP alike)."""
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise GenerationFailed(f"model {model}: unexpected response {str(data)[:200]}") from None
    return Generation(
        text=text or "",
        model=model,
        finish_reason=choice.get("finish_reason") or "stop",
        usage=_usage(data),
        seconds=time.perf_counter() - started,
    )


def events_from_chunks(chunks: Iterable[dict[str, Any]], model: str, started: float) -> Iterator[StreamEvent]:
    """OpenAI-shaped stream chunks -> text events, then one final event carrying the whole ``Generation``."""
    pieces: list[str] = []
    first: float | None = None
    usage = Usage()
    finish = "stop"
    for chunk in chunks:
        if chunk.get("usage"):
            usage = _usage(chunk)
        for choice in chunk.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
            if piece:
                if first is None:
                    first = time.perf_counter() - started
                pieces.append(piece)
                yield StreamEvent(text=piece)
    yield StreamEvent(
        done=True,
        generation=Generation(
            text="".join(pieces),
            model=model,
            finish_reason=finish,
            usage=usage,
            seconds=time.perf_counter() - started,
            first_token_seconds=first,
        ),
    )
