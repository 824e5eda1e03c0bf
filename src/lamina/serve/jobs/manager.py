"""Ingest jobs: uploads and URLs ingested off the request path, one job at a time, in one worker thread.

A job's record (state, per-file progress) lives in the gateway database and is written as it moves,
so it never lies: a server killed mid-job finds the job still marked running at the next start and
marks it ``interrupted``; resuming re-runs the same ingestion, which ends exact because ingestion is
idempotent (unchanged files cost a read, whole batches are atomic).
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lamina.data.registry import now
from lamina.errors import IngestCancelled, LaminaError
from lamina.serve.db import jobs
from lamina.serve.policy.tenants import Tenants

log = logging.getLogger("lamina.serve")
TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
SAVE_EVERY_S = 0.5


@dataclass
class Item:
    source: str  # what the ingestion calls it: an absolute path or a URL
    name: str  # what the user calls it: the uploaded file name or the URL
    state: str = "queued"
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
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def resumable(self) -> bool:
        return self.state in ("interrupted", "cancelled", "failed")

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.state] = counts.get(item.state, 0) + 1
        return {
            "id": self.id,
            "object": "ingest.job",
            "collection": self.collection,
            "state": self.state,
            "resumable": self.resumable,
            "files": [i.to_dict() for i in self.items],
            "counts": counts,
            "report": self.report,
            "error": self.error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class _JobProgress:
    """The data layer's ``Progress`` for one job: per-file states, and cancellation between steps."""

    def __init__(self, job: Job, manager: JobManager) -> None:
        self.job = job
        self.manager = manager
        self.by_source = {i.source: i for i in job.items}
        self._saved = 0.0

    def start(self, total: int | None) -> None:
        pass

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None:
        self._check()

    def file(self, source: str, state: str, detail: str = "") -> None:
        item = self.by_source.get(source)
        if item is not None:
            item.state = "done" if state == "unchanged" else state
            item.detail = "unchanged" if state == "unchanged" else detail
            self.manager.touch(self.job, save=time.monotonic() - self._saved > SAVE_EVERY_S)
            self._saved = time.monotonic()
        self._check()

    def _check(self) -> None:
        if self.job.cancel.is_set():
            raise IngestCancelled("cancelled on request")


class JobManager:
    def __init__(
        self, engine: sa.Engine, tenants: Tenants, on_finished: Callable[[Job], None] | None = None
    ) -> None:
        self.engine = engine
        self.tenants = tenants
        self.on_finished = on_finished
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load job records; any that were queued or running when the server died are interrupted."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.state.in_(["queued", "running"]))
                .values(state="interrupted", updated_at=now())
            )
            for row in conn.execute(sa.select(jobs).order_by(jobs.c.created_at.desc()).limit(1000)):
                items = [Item(**i) for i in json.loads(row.items)]
                for item in items:
                    if item.state not in ("done", "failed", "skipped"):
                        item.state = "interrupted"
                self._jobs[row.id] = Job(
                    row.id,
                    row.tenant,
                    row.collection,
                    items,
                    row.state,
                    json.loads(row.report) if row.report else None,
                    row.error,
                    row.created_at,
                    row.updated_at,
                )
        self._thread = threading.Thread(target=self._work, name="ingest-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the running job's current step; it is recorded as interrupted and can be resumed."""
        self._stopping = True
        for job in self._jobs.values():
            if job.state in ("queued", "running"):
                job.cancel.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    # requests -------------------------------------------------------------------------------------
    def submit(self, tenant: str, collection: str, items: list[Item]) -> Job:
        job = Job("job_" + secrets.token_hex(10), tenant, collection, items)
        with self._lock:
            self._jobs[job.id] = job
        self._save(job)
        self._queue.put(job)
        return job

    def get(self, job_id: str, tenant: str | None) -> Job | None:
        """The job, if it belongs to ``tenant`` (``None``: any tenant, for admins)."""
        job = self._jobs.get(job_id)
        return job if job is not None and (tenant is None or job.tenant == tenant) else None

    def list(self, tenant: str | None, limit: int = 50) -> list[Job]:
        found = [j for j in self._jobs.values() if tenant is None or j.tenant == tenant]
        return sorted(found, key=lambda j: j.created_at, reverse=True)[:limit]

    def cancel(self, job: Job) -> None:
        job.cancel.set()
        if job.state == "queued":
            self._finish(job, "cancelled")

    def resume(self, job: Job) -> None:
        if not job.resumable:
            raise LaminaError(
                f"job {job.id} is {job.state}; only an interrupted, cancelled or failed job resumes"
            )
        job.cancel = threading.Event()
        job.state, job.error = "queued", None
        for item in job.items:
            if item.state not in ("done", "skipped"):
                item.state, item.detail = "queued", ""
        self.touch(job, save=True)
        self._queue.put(job)

    def touch(self, job: Job, *, save: bool) -> None:
        job.version += 1
        job.updated_at = now()
        if save:
            self._save(job)

    # the worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            if job.state != "queued":
                continue
            try:
                self._run(job)
            except Exception as exc:  # a bug in one job must not stop the worker
                log.exception("ingest job %s failed", job.id)
                self._finish(job, "failed", f"{type(exc).__name__}: {exc}")

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            self._finish(job, "cancelled")
            return
        job.state = "running"
        self.touch(job, save=True)
        try:
            coll = self.tenants.workspace(job.tenant).collection(job.collection)
            report = coll.ingest([i.source for i in job.items], progress=_JobProgress(job, self))
        except LaminaError as exc:
            self._finish(job, "failed", str(exc))
            return
        job.report = report.stats() | {"errors": report.errors}
        for item in job.items:
            if item.state in ("queued", "extracting", "embedding") and report.status == "completed":
                item.state = "done"
        # cancelled by a shutdown rather than by the user: interrupted, to be resumed
        state = "interrupted" if report.status == "cancelled" and self._stopping else report.status
        self._finish(job, state)

    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error = state, error
        if self.on_finished is not None:
            self.on_finished(job)
        if state in ("cancelled", "interrupted", "failed"):
            for item in job.items:
                if item.state in ("queued", "extracting", "embedding"):
                    item.state = state
        self.touch(job, save=True)

    def _save(self, job: Job) -> None:
        values = {
            "tenant": job.tenant,
            "collection": job.collection,
            "state": job.state,
            "items": json.dumps([i.__dict__ for i in job.items]),
            "report": json.dumps(job.report) if job.report is not None else None,
            "error": job.error,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
        }
        with self._lock, self.engine.begin() as conn:
            updated = conn.execute(sa.update(jobs).where(jobs.c.id == job.id).values(**values)).rowcount
            if not updated:
                conn.execute(sa.insert(jobs).values(id=job.id, **values))
