"""The engine for code that is not async (the library, the CLI, the evals), as vLLM's ``LLM`` wraps
its engine: one event loop in a daemon thread runs the engine; ``generate`` waits for a result and
``stream`` hands pieces over a queue. Stopping a stream early closes the upstream connection, so a
model (llama.cpp included) stops generating at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Coroutine, Generator
from contextlib import aclosing
from typing import Any, TypeVar

from lamina.config import Settings
from lamina.engine.engine import Engine
from lamina.engine.events import Piece, Result
from lamina.engine.meter import Meter
from lamina.engine.upstream import UpstreamError
from lamina.errors import GenerationFailed
from lamina.models.registry import ModelRegistry
from lamina.models.types import GenerationRequest

T = TypeVar("T")
_END = object()


class SyncEngine:
    def __init__(self, settings: Settings, registry: ModelRegistry | None = None) -> None:
        self.engine = Engine(settings, registry)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lamina-engine", daemon=True)
        self._thread.start()

    @property
    def registry(self) -> ModelRegistry:
        return self.engine.gateway.registry

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def generate(self, model: str, request: GenerationRequest) -> tuple[Result, Meter]:
        """A whole generation (``GenerationFailed`` when the model and its fallbacks all failed)."""

        async def run() -> tuple[Result, Meter]:
            meter = Meter(model)
            try:
                dep = await self.engine.deployment(model)
                _, result = await self.engine.generate(dep, request, meter)
                return result, meter
            except UpstreamError as exc:
                raise GenerationFailed(f"model {model}: {exc}") from None
            finally:
                await meter.close()

        return self._run(run())

    def stream(self, model: str, request: GenerationRequest) -> Generator[Piece, None, None]:
        """The generation's pieces as they come; closing the iterator stops the model."""
        pieces: queue.Queue[object] = queue.Queue()

        async def pump() -> None:
            meter = Meter(model)
            try:
                dep = await self.engine.deployment(model)
                _, first, rest = await self.engine.stream(dep, request, meter)
                async with aclosing(rest):
                    if first is not None:
                        pieces.put(first)
                    async for piece in rest:
                        pieces.put(piece)
            except UpstreamError as exc:
                pieces.put(GenerationFailed(f"model {model}: {exc}"))
            except BaseException as exc:  # surfaced in the reader's thread (cancellation included)
                pieces.put(exc)
            finally:
                await meter.close()
                pieces.put(_END)

        task = asyncio.run_coroutine_threadsafe(pump(), self._loop)
        try:
            while (item := pieces.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Piece)
                yield item
        finally:
            if not task.done():
                task.cancel()  # the reader stopped early: the upstream connection closes

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self.engine.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self.engine.gateway.registry.close()
