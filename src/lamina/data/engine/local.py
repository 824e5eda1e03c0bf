"""The in-process engine: one batch after another, the embedder using every core."""

from __future__ import annotations

from collections.abc import Iterator

from lamina.data.engine.stages import Loaded, Ready, Stages, Work, embed_counted, to_embed


class LocalEngine:
    """Preparing the next batch in a thread while this one embeds measured no faster (ONNX Runtime
    keeps every core busy; README "Measured"), so batches run one after another."""

    name = "local"

    def run(self, batches: Iterator[list[Work]], stages: Stages) -> Iterator[Ready]:
        for batch in batches:
            prepared = []
            for work in batch:
                if isinstance(work, Loaded):
                    stages.event(work.source, "extracting")
                prepared.append(stages.prepare(work))
                stages.check()
            chunks = [c for p in prepared for c in p.chunks]
            vectors = stages.reuse(chunks)
            for p in prepared:
                if p.document is not None:
                    stages.event(p.source, "embedding")
            ready = Ready(prepared, vectors)
            if todo := to_embed(chunks, vectors):
                fresh, ready.tokens = embed_counted(stages.embedder, [t for _, t in todo])
                vectors.update({k: fresh[i] for i, (k, _) in enumerate(todo)})
                ready.embedded = len(todo)
            yield ready
