"""The LLM seam: one interface for a local llama.cpp model and a remote OpenAI-compatible one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from lamina.models.types import Generation, GenerationRequest, StreamEvent


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
