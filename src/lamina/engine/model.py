"""A model that generates, for the library and the CLI: the model layer's description (window,
tokenizer, capabilities) with generation through the engine. ``Models`` hands them out by name,
one engine (so one loaded local model) per configuration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from lamina.config import EndpointSettings, Settings
from lamina.config.models import Capability
from lamina.engine.sync import SyncEngine
from lamina.models.base import Model
from lamina.models.registry import ModelInfo, ModelRegistry
from lamina.models.types import Generation, GenerationRequest, StreamEvent, Usage


class EngineModel:
    """``LLM`` over the engine: ``generate`` and ``stream`` give the first choice's text."""

    def __init__(self, model: Model, engine: SyncEngine) -> None:
        self.model = model
        self._engine = engine

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def context_window(self) -> int:
        return self.model.context_window

    @property
    def is_chat(self) -> bool:
        return self.model.is_chat

    def capabilities(self) -> list[Capability]:
        return self.model.capabilities()

    def count_tokens(self, text: str) -> int:
        return self.model.count_tokens(text)

    def endpoints(self) -> list[EndpointSettings]:
        return self.model.endpoints()

    def body(self, request: GenerationRequest, *, stream: bool = False) -> dict[str, Any]:
        return self.model.body(request, stream=stream)

    def generate(self, request: GenerationRequest) -> Generation:
        started = time.perf_counter()
        result, meter = self._engine.generate(self.name, request)
        choice = result.first
        return Generation(
            text=choice.text,
            model=meter.model,
            finish_reason=choice.finish_reason,
            usage=result.usage,
            seconds=time.perf_counter() - started,
            first_token_seconds=meter.first_token_s,
        )

    def stream(self, request: GenerationRequest) -> Iterator[StreamEvent]:
        """Text pieces of the first choice, then one event with the whole ``Generation``."""
        started = time.perf_counter()
        texts: list[str] = []
        first: float | None = None
        usage = Usage()
        finish = "stop"
        pieces = self._engine.stream(self.name, request)
        try:
            for piece in pieces:
                usage = piece.usage or usage
                if piece.index != 0:
                    continue
                finish = piece.finish_reason or finish
                if piece.text:
                    if first is None:
                        first = time.perf_counter() - started
                    texts.append(piece.text)
                    yield StreamEvent(text=piece.text)
        finally:
            pieces.close()  # a reader that stops early stops the model
        yield StreamEvent(
            done=True,
            generation=Generation(
                text="".join(texts),
                model=self.name,
                finish_reason=finish,
                usage=usage,
                seconds=time.perf_counter() - started,
                first_token_seconds=first,
            ),
        )

    def close(self) -> None:
        return None  # the engine owns the model


class Models:
    """Configured models as ``EngineModel``s, by name, over one engine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = ModelRegistry(settings)
        self._engine: SyncEngine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> SyncEngine:
        with self._lock:
            if self._engine is None:
                self._engine = SyncEngine(self.settings, self.registry)
            return self._engine

    @property
    def names(self) -> list[str]:
        return self.registry.names

    def get(self, name: str | None = None) -> EngineModel:
        return EngineModel(self.registry.get(name), self.engine)

    def describe(self, *, probe: bool = True) -> list[ModelInfo]:
        return self.registry.describe(probe=probe)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        else:
            self.registry.close()
