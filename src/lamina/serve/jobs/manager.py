"""Ingest jobs off the request path: queued in the shared job table, run by whichever worker claims them.

The server's side of jobs: submit, read, cancel and resume, all through the table (``JobStore``),
so any replica answers about any job. Running them is the workers' business (``JobWorker``): one
embedded in ``lamina serve`` unless ``serve.worker = false``, and any number of ``lamina worker``
processes.
"""

from __future__ import annotations

import secrets
from typing import Any

from lamina.errors import LaminaError
from lamina.serve.jobs.model import TERMINAL, Item, Job
from lamina.serve.jobs.store import JobStore
from lamina.serve.jobs.worker import JobWorker

__all__ = ["TERMINAL", "Item", "Job", "JobManager"]


class JobManager:
    def __init__(self, store: JobStore, worker: JobWorker | None = None) -> None:
        self.store = store
        self.worker = worker

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()

    def stop(self) -> None:
        """Stop the embedded worker after its current step; its job goes back to the queue."""
        if self.worker is not None:
            self.worker.stop()

    def submit(
        self,
        tenant: str,
        collection: str,
        items: list[Item],
        kind: str = "ingest",
        options: dict[str, Any] | None = None,
    ) -> Job:
        job = Job("job_" + secrets.token_hex(10), tenant, collection, items, kind=kind, options=options or {})
        self.store.insert(job)
        self._wake()
        return job

    def sources_now(self) -> None:
        """A source was added or asked to sync: the embedded worker looks for due sources now."""
        if self.worker is not None:
            self.worker.sources_now()

    def get(self, job_id: str, tenant: str | None) -> Job | None:
        """The job, if it belongs to ``tenant`` (``None``: any tenant, for admins)."""
        return self.store.get(job_id, tenant)

    def list(self, tenant: str | None, limit: int = 50) -> list[Job]:
        return self.store.list(tenant, limit)

    def cancel(self, job: Job) -> Job:
        self.store.request_cancel(job.id)
        return self.store.get(job.id) or job

    def resume(self, job: Job) -> Job:
        if not self.store.requeue(job.id):
            current = self.store.get(job.id) or job
            raise LaminaError(
                f"job {job.id} is {current.state}; only an interrupted, cancelled or failed job resumes"
            )
        self._wake()
        return self.store.get(job.id) or job

    def _wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()
