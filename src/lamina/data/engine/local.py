"""The in-process engine: one batch after another, the embedder using every core."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Final

from lamina.data.embed.base import Vectors
from lamina.data.engine.stages import Loaded, Prepared, Ready, Stages, Vector, Work, embed_counted, to_embed
from lamina.data.progress import FileState

Todo = list[tuple[str, str]]  # (embed_hash, text) to embed afresh


class LocalEngine:
    """Batches run one after another with a local model: preparing the next batch in a thread
    while this one embeds measured no faster (ONNX Runtime keeps every core busy;
    docs/benchmarks.md). With a remote embedder (``embedder.remote``) the next batch is extracted and
    chunked while this one's requests are in flight, so the endpoint is not left idle."""

    name: Final = "local"

    def run(self, batches: Iterator[list[Work]], stages: Stages) -> Iterator[Ready]:
        if getattr(stages.embedder, "remote", False):
            yield from self._overlapped(batches, stages)
            return
        for batch in batches:
            prepared, vectors, todo = self._prepare(batch, stages)
            fresh = embed_counted(stages.embedder, [t for _, t in todo]) if todo else None
            yield self._ready(prepared, vectors, todo, fresh)

    def _overlapped(self, batches: Iterator[list[Work]], stages: Stages) -> Iterator[Ready]:
        with ThreadPoolExecutor(2, thread_name_prefix="lamina-ingest") as pool:
            previous: Callable[[], Ready] | None = None
            for batch in batches:
                prepared, vectors, todo = self._prepare(batch, stages)
                texts = [t for _, t in todo]
                future = pool.submit(embed_counted, stages.embedder, texts) if todo else None
                if previous is not None:
                    yield previous()
                previous = partial(self._awaited, prepared, vectors, todo, future)
            if previous is not None:
                yield previous()

    @classmethod
    def _awaited(
        cls,
        prepared: list[Prepared],
        vectors: dict[str, Vector],
        todo: Todo,
        future: Future[tuple[Vectors, int]] | None,
    ) -> Ready:
        return cls._ready(prepared, vectors, todo, future.result() if future is not None else None)

    @staticmethod
    def _prepare(batch: list[Work], stages: Stages) -> tuple[list[Prepared], dict[str, Vector], Todo]:
        prepared = []
        for work in batch:
            on_page = None
            if isinstance(work, Loaded):
                stages.event(work.source, FileState.EXTRACTING, "")
                on_page = _pages(stages, work.source)
            prepared.append(stages.prepare(work, on_page))
            stages.check()
        chunks = [c for p in prepared for c in p.chunks]
        vectors = stages.reuse(chunks)
        for p in prepared:
            if p.document is not None:
                stages.event(p.source, FileState.EMBEDDING, "")
        return prepared, vectors, to_embed(chunks, vectors)

    @staticmethod
    def _ready(
        prepared: list[Prepared],
        vectors: dict[str, Vector],
        todo: Todo,
        fresh: tuple[Vectors, int] | None,
    ) -> Ready:
        ready = Ready(prepared, vectors)
        if fresh is not None:
            embedded, ready.tokens = fresh
            vectors.update({k: embedded[i] for i, (k, _) in enumerate(todo)})
            ready.embedded = len(todo)
        return ready


def _pages(stages: Stages, source: str) -> Callable[[int, int], None]:
    """A long document's pages as progress (``page 3/300``); Ctrl-C or a cancel stops between pages."""

    def on_page(done: int, total: int) -> None:
        if total > 1:
            stages.event(source, FileState.EXTRACTING, f"page {done}/{total}")
        stages.check()

    return on_page
