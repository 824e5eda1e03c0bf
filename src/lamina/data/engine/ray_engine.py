"""The Ray engine: extraction and chunking as Ray tasks, embedding in a pool of Ray actors.

The driver (this process) keeps what must happen in one place: it lists and hashes the
sources, looks up the vectors the stores already hold, and writes each batch (store, then
registry), so the result equals the local engine's. Everything between runs on the cluster,
a few batches ahead of the writes.

Ray core rather than a Ray Data ``Dataset``: Ray Data retries a task whose worker died without
limit (``max_retries=-1`` in ``ray/data/_internal/remote_fn.py``), so one document that crashes
its extractor would stall the run for ever, and it offers no per-task deadline. Here a group of
sources is retried once; a group that still fails or overruns ``ingest.document_timeout_s`` is
split into single sources, and a single one that fails again is reported failed with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from lamina.config import IngestSettings
from lamina.data.engine.stages import Loaded, Prepared, Ready, Stages, Vector, Work, to_embed
from lamina.data.progress import FileState
from lamina.errors import ConfigError, ExtractionFailed

logger = logging.getLogger(__name__)

MISSING_EXTRA = "the Ray engine needs Ray: pip install 'lamina[ray]'"
PAGE_LOOK_S = 1.0  # how often the driver shows the pages a long document has reached
EMBED_PART_MIN = 16  # texts per actor call, at least: smaller calls cost more than they spread


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None
    return ray


def _errors_to_stderr() -> None:
    """Ray prints the raylet's error messages (a worker died, a task is retried) to stdout
    (``listen_error_messages`` in ``ray/_private/worker.py``); a Lamina command's stdout is its
    result (``--json``), so they go to stderr, as warnings do."""
    worker = sys.modules.get("ray._private.worker")
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "lamina", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.lamina = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr  # type: ignore[union-attr]


def connect(address: str | None) -> Any:
    """Ray, initialised once per process: the cluster at ``address``, or a local instance."""
    ray = import_ray()
    _errors_to_stderr()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        try:
            with warnings.catch_warnings():  # Ray forks its daemons: lancedb warns, harmlessly
                warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
                ray.init(address=address, **options) if address else ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise ConfigError(f"cannot reach {where}: {exc}") from None
    return ray


@dataclass
class _Group:
    works: list[Work]
    ref: Any
    single: bool = False


@dataclass
class _Extracting:
    groups: list[_Group]


@dataclass
class _Embedding:
    prepared: list[Prepared]
    vectors: dict[str, Vector]
    parts: list[tuple[list[str], Any]] = field(default_factory=list)


class RayEngine:
    name: Final = "ray"

    def __init__(self, settings: IngestSettings) -> None:
        import_ray()  # fail now, with the extra's name, not half-way into a run
        self.settings = settings
        self.actor_stats: list[dict[str, Any]] = []  # of the last run, for benchmarks

    def connect(self) -> None:
        """Join (or start) Ray now, so its start-up is not counted as the run's."""
        connect(self.settings.ray_address)

    def run(self, batches: Iterator[list[Work]], stages: Stages) -> Iterator[Ready]:
        ray = connect(self.settings.ray_address)
        from lamina.data.engine import ray_tasks

        run = _RayRun(ray, ray_tasks, self.settings, stages)
        try:
            yield from run.pipeline(batches)
            self.actor_stats = run.actor_stats()
        finally:
            run.release()


class _RayRun:
    """One run's tasks and actors, and the two windows of batches in flight."""

    def __init__(self, ray: Any, tasks: Any, settings: IngestSettings, stages: Stages) -> None:
        self.ray = ray
        self.settings = settings
        self.stages = stages
        self.preparer = ray.put(stages.prepare)
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        count = settings.ray_actors or max(1, nodes)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # an actor holds a CPU for the scheduler (its model uses the node's cores anyway), unless
        # that would leave no CPU for the extraction tasks: then the run would wait for ever
        actor_cpus = 1 if cpus - count >= 1 else 0
        self.actors = [
            tasks.EmbedActor.options(
                num_cpus=actor_cpus, max_restarts=-1, max_task_retries=-1, scheduling_strategy="SPREAD"
            ).remote(stages.embedder)
            for _ in range(count)
        ]
        self.prepare_many = tasks.prepare_many
        self.board = tasks.PageBoard.remote()  # pages read on the workers, for per-page progress
        self._next_actor = 0
        per_batch = math.ceil(settings.batch_documents / settings.ray_docs_per_task)
        self.extract_ahead = max(2, math.ceil(2 * cpus / per_batch))  # tasks queued for every CPU
        self.embed_ahead = max(2, count)
        self.extracting: deque[_Extracting] = deque()
        self.embedding: deque[_Embedding] = deque()

    def pipeline(self, batches: Iterator[list[Work]]) -> Iterator[Ready]:
        for batch in batches:
            self.extracting.append(self._submit(batch))
            self.stages.check()
            while len(self.extracting) > self.extract_ahead:
                self.embedding.append(self._embed(self._collect(self.extracting.popleft())))
            while len(self.embedding) > self.embed_ahead:
                yield self._finish(self.embedding.popleft())
        while self.extracting:
            self.embedding.append(self._embed(self._collect(self.extracting.popleft())))
            while len(self.embedding) > self.embed_ahead:
                yield self._finish(self.embedding.popleft())
        while self.embedding:
            yield self._finish(self.embedding.popleft())

    # extraction ------------------------------------------------------------------------------
    def _submit(self, batch: list[Work], *, single: bool = False) -> _Extracting:
        size = 1 if single else self.settings.ray_docs_per_task
        groups = []
        for i in range(0, len(batch), size):
            works = batch[i : i + size]
            for w in works:
                if isinstance(w, Loaded) and not single:
                    self.stages.event(w.source, FileState.EXTRACTING, "")
            # a group is retried once (its worker may have been lost for any reason); a single
            # source is tried once more on its own, so a crashing one costs two workers, not six
            task = self.prepare_many.options(max_retries=0 if single else 1)
            ref = task.remote(self.preparer, works, self.board)
            groups.append(_Group(works, ref, single))
        return _Extracting(groups)

    def _collect(self, extracting: _Extracting) -> list[Prepared]:
        """Each group's results in order; a group that failed or overran is redone one by one."""
        out: list[Prepared] = []
        for group in extracting.groups:
            ready = self._wait(group.ref)
            if ready:
                try:
                    out.extend(self.ray.get(group.ref))
                    continue
                except self.ray.exceptions.RayError as exc:
                    failure = f"its extraction crashed the worker ({type(exc).__name__})"
            else:
                self.ray.cancel(group.ref, force=True)
                failure = f"extraction did not finish within {self.settings.document_timeout_s:g} s"
            if group.single:
                logger.warning("%s: %s", group.works[0].source, failure)
                out.append(Prepared(group.works[0].source, error=ExtractionFailed(failure)))
            else:
                out.extend(self._collect(self._submit(group.works, single=True)))
        return out

    def _wait(self, ref: Any) -> bool:
        """Wait for one task up to the document time limit, showing the pages its workers read
        meanwhile (``page 3/300``); a cancel or Ctrl-C stops the wait between two looks."""
        deadline = time.monotonic() + self.settings.document_timeout_s
        while True:
            left = deadline - time.monotonic()
            ready, _ = self.ray.wait([ref], timeout=max(0.0, min(PAGE_LOOK_S, left)))
            self._show_pages()
            self.stages.check()
            if ready or left <= PAGE_LOOK_S:
                return bool(ready)

    def _show_pages(self) -> None:
        try:
            pages = self.ray.get(self.board.drain.remote(), timeout=10)
        except Exception:  # progress only: a lost board costs the page counts, never the run
            return
        for source, (done, total) in pages.items():
            self.stages.event(source, FileState.EXTRACTING, f"page {done}/{total}")

    # embedding -------------------------------------------------------------------------------
    def _embed(self, prepared: list[Prepared]) -> _Embedding:
        chunks = [c for p in prepared for c in p.chunks]
        pending = _Embedding(prepared, self.stages.reuse(chunks))
        for p in prepared:
            if p.document is not None:
                self.stages.event(p.source, FileState.EMBEDDING, "")
        todo = to_embed(chunks, pending.vectors)
        if not todo:
            return pending
        size = max(EMBED_PART_MIN, math.ceil(len(todo) / len(self.actors)))
        for i in range(0, len(todo), size):
            part = todo[i : i + size]
            actor = self.actors[self._next_actor % len(self.actors)]
            self._next_actor += 1
            pending.parts.append(([k for k, _ in part], actor.embed.remote([t for _, t in part])))
        return pending

    def _finish(self, pending: _Embedding) -> Ready:
        ready = Ready(pending.prepared, pending.vectors)
        for keys, ref in pending.parts:
            while True:
                done, _ = self.ray.wait([ref], timeout=1.0)
                self.stages.check()
                if done:
                    break
            vectors, tokens = self.ray.get(ref)
            ready.vectors.update(zip(keys, vectors, strict=True))
            ready.embedded += len(keys)
            ready.tokens += tokens
        return ready

    def actor_stats(self) -> list[dict[str, Any]]:
        stats: list[dict[str, Any]] = self.ray.get([a.stats.remote() for a in self.actors], timeout=30)
        return stats

    def release(self) -> None:
        """Cancel what is still queued and stop this run's actors (the cluster stays up)."""
        started = time.perf_counter()
        for extracting in self.extracting:
            for group in extracting.groups:
                self.ray.cancel(group.ref, force=True)
        for embedding in self.embedding:
            for _, ref in embedding.parts:
                with contextlib.suppress(Exception):  # already running or done: the kill ends it
                    self.ray.cancel(ref)
        for actor in [*self.actors, self.board]:
            self.ray.kill(actor)
        logger.debug("released the Ray run in %.2f s", time.perf_counter() - started)
