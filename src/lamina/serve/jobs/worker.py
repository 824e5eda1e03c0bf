"""A job worker: claims jobs from the shared table and runs them, one at a time, in one thread.

``lamina serve`` runs one (unless ``serve.worker = false``) and ``lamina worker`` runs one in a
process of its own; any number of them, on any machines, share the table. A worker that is stopped
lets go of its job, which goes back to the queue and is continued by the next worker that claims
it; a worker that dies stops renewing its lease, and the job is taken over when the lease runs out.
Either way the re-run ends exact, because ingestion is idempotent (unchanged files cost a read,
whole batches are atomic).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from lamina.data.progress import FileState, IngestReport
from lamina.data.reindex import ReindexOptions, reindex
from lamina.data.syncing import configured, sync_due
from lamina.errors import IngestCancelled, LaminaError
from lamina.serve.jobs.model import QUEUED, UNFINISHED, Job
from lamina.serve.jobs.store import JobStore
from lamina.serve.policy.tenants import Tenants
from lamina.serve.process import process_name

log = logging.getLogger("lamina.serve")
SAVE_EVERY_S = 0.5


class _JobProgress:
    """The data layer's ``Progress`` for one job: per-file states, and cancellation between steps."""

    def __init__(self, job: Job, worker: JobWorker) -> None:
        self.job = job
        self.worker = worker
        self.by_source = {i.source: i for i in job.items}
        self._saved = 0.0

    def start(self, total: int | None) -> None:
        pass

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None:
        self._check()

    def file(self, source: str, state: FileState, detail: str = "") -> None:
        item = self.by_source.get(source)
        if item is not None:
            if state is FileState.UNCHANGED:  # the API shows it done, with nothing to do
                item.state, item.detail = FileState.DONE.value, "unchanged"
            else:
                item.state, item.detail = state.value, detail
            if time.monotonic() - self._saved > SAVE_EVERY_S:  # the whole file list: not per file
                self.worker.save(self.job)
                self._saved = time.monotonic()
        self._check()

    def _check(self) -> None:
        if self.job.cancel.is_set():
            raise IngestCancelled("cancelled on request")


class JobWorker:
    def __init__(
        self,
        store: JobStore,
        tenants: Tenants,
        *,
        poll_s: float = 1.0,
        name: str | None = None,
        on_finished: Callable[[Job, IngestReport | None], None] | None = None,
        source_poll_s: float | None = None,
    ) -> None:
        self.store = store
        self.tenants = tenants
        self.poll_s = poll_s
        # sources due to sync are looked for this often, between jobs (None: this worker syncs none)
        self.source_poll_s = source_poll_s
        self._sources_at = 0.0
        self._configured = False
        self.name = name or process_name()
        self.on_finished = on_finished
        self.current: Job | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lost: set[str] = set()  # jobs whose lease this worker lost
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ingest-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for work now (a job was just queued in this process)."""
        self._wake.set()

    def sources_now(self) -> None:
        """Look for sources due to sync now, not at the next poll."""
        self._sources_at = 0.0
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the running job's current step; the job goes back to the queue."""
        self._stopping.set()
        if self.current is not None:
            self.current.cancel.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def run_forever(self) -> None:
        """Run in the calling thread until ``stop`` (``lamina worker``)."""
        self._loop()

    def save(self, job: Job) -> None:
        if not self.store.save(job, self.name):
            self._lose(job)

    # the loop -------------------------------------------------------------------------------------
    def _loop(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                job = self.store.claim(self.name)
            except Exception as exc:  # the database is away: wait and try again
                if not failing:  # once per outage, not once a poll
                    log.warning("worker %s: could not look for jobs (%s); retrying", self.name, exc)
                failing, job = True, None
            else:
                if failing:
                    log.info("worker %s: the job table answers again", self.name)
                failing = False
            if job is None:
                self._sync_sources()
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            log.info("worker %s: running job %s (attempt %d)", self.name, job.id, job.attempts)
            self.current = job
            ended = threading.Event()
            beat = threading.Thread(target=self._beat, args=(job, ended), name="job-heartbeat", daemon=True)
            beat.start()
            try:
                self._run(job)
            except Exception as exc:  # a bug in one job must not stop the worker
                log.exception("ingest job %s failed", job.id)
                self._finish(job, "failed", f"{type(exc).__name__}: {exc}")
            finally:
                self.current = None
                ended.set()  # the heartbeat stops now, not at its next beat: the next job starts at once
                beat.join()

    def _sync_sources(self) -> None:
        """The sources due to sync, of every tenant, each under its lease (lamina.data.syncing)."""
        if self.source_poll_s is None or time.monotonic() - self._sources_at < self.source_poll_s:
            return
        self._sources_at = time.monotonic()
        settings = self.tenants.settings
        try:
            workspaces = [self.tenants.workspace(t) for t in self.tenants.known()]
            if not self._configured:  # lamina.toml's [[sources]]: put in the registry once, at start
                configured(self.tenants.workspace(settings.tenant))
                self._configured = True
            for result in sync_due(workspaces, self.name, settings.serve.source_lease_s):
                log.info("worker %s: source %s synced: %s", self.name, result.source, result.status)
        except Exception as exc:  # the registry is away, or a source is misconfigured: next time
            log.warning("worker %s: could not sync sources (%s)", self.name, exc)

    def _beat(self, job: Job, ended: threading.Event) -> None:
        every = min(1.0, self.store.lease_s / 3)
        while not ended.is_set():
            try:
                beat = self.store.heartbeat(job.id, self.name)
            except Exception as exc:  # keep trying; the lease says how long we may
                log.warning("worker %s: heartbeat for %s failed (%s)", self.name, job.id, exc)
            else:
                if not beat.held:
                    self._lose(job)
                    return
                if beat.cancel:
                    job.cancel.set()
            if ended.wait(every):
                return
            if self._stopping.is_set():  # a stop that came while this job was being claimed
                job.cancel.set()

    def _lose(self, job: Job) -> None:
        log.warning("worker %s lost its lease on job %s; another worker has it", self.name, job.id)
        self._lost.add(job.id)
        job.cancel.set()

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            self._finish(job, "cancelled")
            return
        self.save(job)
        try:
            report, extra = self._work(job)
        except LaminaError as exc:
            self._finish(job, "failed", str(exc))
            return
        job.report = report.to_dict(run=False) | extra
        if report.status == "completed":
            for item in job.items:
                if item.state in UNFINISHED:
                    item.state = FileState.DONE.value
        if report.status == "cancelled" and self._stopping.is_set():
            self._release(job)  # stopped, not cancelled: the next worker continues it
        else:
            self._finish(job, report.status, report=report)

    def _work(self, job: Job) -> tuple[IngestReport, dict[str, Any]]:
        """Run the job's ingestion: its files into the live version, or a new version (a reindex)."""
        ws = self.tenants.workspace(job.tenant)
        progress = _JobProgress(job, self)
        if job.kind == "reindex":
            opts = dict(job.options)
            switch = bool(opts.pop("switch", False))
            result = reindex(ws, job.collection, ReindexOptions(**opts), progress=progress, switch=switch)
            return result.report, {"version": result.version.to_dict(), "switched": result.switched}
        coll = ws.collection(job.collection)
        sources = [i.source for i in job.items]
        metadata, readers = job.options.get("metadata"), job.options.get("readers")
        return coll.ingest(sources, progress=progress, metadata=metadata, readers=readers), {}

    def _release(self, job: Job) -> None:
        job.state = "queued"
        for item in job.items:
            if item.state in UNFINISHED:
                item.state = QUEUED
        if job.id not in self._lost:
            self.store.save(job, self.name, release=True)

    def _finish(
        self, job: Job, state: str, error: str | None = None, *, report: IngestReport | None = None
    ) -> None:
        """End the job (``report``: this attempt's, when its ingestion ran to an end)."""
        if job.id in self._lost:
            return  # its new owner writes the outcome
        job.state, job.error = state, error
        if state in ("cancelled", "interrupted", "failed"):
            for item in job.items:
                if item.state in UNFINISHED:
                    item.state = state
        if self.store.save(job, self.name, release=True) and self.on_finished is not None:
            self.on_finished(job, report)
