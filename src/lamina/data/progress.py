"""What an ingestion run tells the outside: each source's state as it goes, and the report at its end.

The engines and the driver (``lamina.data.ingest``) emit ``FileState`` values; a front end (the
CLI's progress bar, a server's job) implements ``Progress`` and reads them as they are, never by
their spelling. ``IngestReport`` is the run's outcome; its JSON forms are made in ``to_dict`` only.
This module imports nothing of the data layer, so every part of it can use these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

RunStatus = Literal["running", "completed", "failed", "cancelled", "interrupted"]


class FileState(StrEnum):
    """Where one source stands in a run (the values are what job files show in the API)."""

    EXTRACTING = "extracting"  # an engine is extracting and chunking it
    EMBEDDING = "embedding"  # an engine is embedding its chunks
    DONE = "done"  # written (detail: how many chunks)
    UNCHANGED = "unchanged"  # the same bytes were indexed by the same pipeline before: nothing to do
    SKIPPED = "skipped"  # not a document this run can index (detail: why)
    FAILED = "failed"  # could not be read or extracted (detail: why)

    @property
    def in_flight(self) -> bool:
        """An engine has it: a run stopped now leaves it to be redone."""
        return self in (FileState.EXTRACTING, FileState.EMBEDDING)


class Progress(Protocol):
    """What a front end implements to show a run; the data layer never imports one."""

    def start(self, total: int | None) -> None: ...

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None: ...

    def file(self, source: str, state: FileState, detail: str = "") -> None:
        """One source's state (``detail``: the chunks written, or why it was skipped or failed).

        It may raise ``IngestCancelled`` to stop the run; the batch under way is then not written.
        """
        ...


class NoProgress:
    """A ``Progress`` that shows nothing."""

    def start(self, total: int | None) -> None:
        pass

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None:
        pass

    def file(self, source: str, state: FileState, detail: str = "") -> None:
        pass


_RUN_FIELDS = ("collection", "run_id", "status")  # who ran and how it ended, beside the counts


@dataclass
class IngestReport:
    collection: str
    run_id: int
    status: RunStatus = "running"
    ingested: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    low_coverage: int = 0  # pages whose extraction kept less than ingest.min_coverage of their text
    chunks_written: int = 0
    chunks_embedded: int = 0
    tokens_embedded: int = 0
    seconds: float = 0.0
    write_seconds: float = 0.0  # the driver's commits (store, then registry): what one driver can write
    errors: list[dict[str, str]] = field(default_factory=list)  # {"source", "kind", "reason"}

    def stats(self) -> dict[str, Any]:
        """The counts and timings (what the registry keeps of a run, and its trace attributes)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("errors", *_RUN_FIELDS)}

    def to_dict(self, *, run: bool = True) -> dict[str, Any]:
        """The report's JSON form: every field (``lamina ingest --json``), or without ``run`` the
        counts, timings and errors only (a job's ``report``: the job names its collection and state)."""
        if run:
            return dict(self.__dict__)
        return self.stats() | {"errors": self.errors}
