"""The ingest-engine seam: where a run's extraction, chunking and embedding happen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from lamina.config import IngestEngineName
from lamina.data.engine.stages import Ready, Stages, Work


class IngestEngine(Protocol):
    """Turns batches of changed sources into batches ready to write, in the order given.

    The engine never touches the registry or the store's writes: the driver commits each
    ``Ready`` batch (store first, then registry), so every engine gives the same guarantees.
    Closing the iterator early (Ctrl-C, a cancelled job) must release what the engine started.
    """

    @property
    def name(self) -> IngestEngineName:
        """Its name in ``ingest.engine``."""
        ...

    def run(self, batches: Iterator[list[Work]], stages: Stages) -> Iterator[Ready]: ...
