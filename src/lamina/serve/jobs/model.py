"""An ingest job as the API shows it: its files, each with a state, and the job's own state."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from lamina.data.progress import FileState
from lamina.data.registry import now

TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
RESUMABLE = ("interrupted", "cancelled", "failed")
# An item's state: "queued", then the ingestion's own FileState values as it reports them (an
# unchanged file shows as done), or the job's end state if the job ended before the file did.
QUEUED = "queued"
SETTLED = (FileState.DONE, FileState.SKIPPED, FileState.FAILED)  # item states a re-run does not redo
RESUMED_AS_IS = (FileState.DONE, FileState.SKIPPED)  # a resumed job tries its failed files again
UNFINISHED = (QUEUED, *(s for s in FileState if s.in_flight))  # waiting, or an engine has it


@dataclass
class Item:
    source: str  # what the ingestion calls it: an absolute path or a URL
    name: str  # what the user calls it: the uploaded file name or the URL
    state: str = QUEUED
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "state": self.state, "detail": self.detail}


@dataclass
class Job:
    id: str
    tenant: str
    collection: str
    items: list[Item]
    state: str = "queued"
    report: dict[str, Any] | None = None
    error: str | None = None
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    version: int = 0  # bumped on every change: event streams send a job when it moved
    attempts: int = 0  # how many times a worker claimed it (more than one: taken over or resumed)
    kind: str = "ingest"  # or "reindex": build a new version of the collection from its documents
    options: dict[str, Any] = field(default_factory=dict)  # a reindex's ReindexOptions, and "switch"
    cancel: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.state] = counts.get(item.state, 0) + 1
        return {
            "id": self.id,
            "object": f"{self.kind}.job",
            "collection": self.collection,
            "state": self.state,
            "resumable": self.resumable,
            **({"options": self.options} if self.kind != "ingest" else {}),
            "files": [i.to_dict() for i in self.items],
            "counts": counts,
            "report": self.report,
            "error": self.error,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
