"""Ingest jobs bound to a client: refresh, cancel, resume, and ``wait`` with a progress callback.

``wait`` listens to the job's server-sent events (one job state each time it moves); if the stream
breaks it looks the job up once and listens again, so progress is never missed and never repeated.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import httpx
from pydantic import PrivateAttr

from lamina.client import _calls as calls
from lamina.client._transport import AsyncTransport, SyncTransport
from lamina.client.errors import APIConnectionError, LaminaError, WaitTimeout
from lamina.client.types import JobInfo
from lamina.sse import data_of

J = TypeVar("J", bound=JobInfo)
RECONNECT_S = 1.0


class JobWatcher(Generic[J]):
    """Turns job states into reports of change, and keeps the deadline."""

    def __init__(self, make: Callable[[dict[str, Any]], J], job_id: str, timeout: float | None) -> None:
        self.make = make
        self.job_id = job_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._last: object = None

    def feed(self, data: dict[str, Any]) -> J | None:
        """The job if it moved since the last state seen (``None``: nothing new)."""
        job = self.make(data)
        seen = (job.state, [(f.name, f.state, f.detail) for f in job.files], job.error)
        if seen == self._last:
            return None
        self._last = seen
        return job

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise WaitTimeout(f"job {self.job_id} did not end within {self.timeout:g}s (it goes on)")


def _event(line: str) -> dict[str, Any] | None:
    payload = data_of(line)
    return json.loads(payload) if payload else None


class Job(JobInfo):
    """An ingest job of a :class:`~lamina.client.Lamina` client (a snapshot: methods return new ones)."""

    _transport: SyncTransport | None = PrivateAttr(None)

    @classmethod
    def of(cls, data: dict[str, Any], transport: SyncTransport) -> Job:
        job = cls.model_validate(data)
        job._transport = transport
        return job

    def _t(self) -> SyncTransport:
        if self._transport is None:
            raise LaminaError("this job is not bound to a client; get it with client.jobs.get(id)")
        return self._transport

    def refresh(self) -> Job:
        return Job.of(self._t().call(calls.get_job(self.id)), self._t())

    def cancel(self) -> Job:
        """Stop between steps; what was written stays, and the job can be resumed."""
        return Job.of(self._t().call(calls.cancel_job(self.id)), self._t())

    def resume(self) -> Job:
        """Re-run an interrupted, cancelled or failed job (unchanged files cost only a read)."""
        return Job.of(self._t().call(calls.resume_job(self.id)), self._t())

    def wait(self, progress: Callable[[Job], object] | None = None, *, timeout: float | None = None) -> Job:
        """Block until the job ends; ``progress(job)`` is called on every change (per-file states).

        Returns the final job: check ``state`` (``completed``…) and ``failed_files``. Raises
        ``WaitTimeout`` after ``timeout`` seconds (the job goes on).
        """
        t = self._t()
        watch = JobWatcher(lambda data: Job.of(data, t), self.id, timeout)

        def report(job: Job | None) -> bool:
            if job is None:
                return False
            if progress is not None:
                progress(job)
            return job.finished

        while True:
            try:
                response = t.open(calls.job_events(self.id))
                try:
                    for line in response.iter_lines():
                        watch.check()
                        data = _event(line)
                        job = watch.feed(data) if data is not None else None
                        if report(job):
                            assert job is not None
                            return job
                finally:
                    response.close()
            except (APIConnectionError, httpx.TransportError):
                pass  # the stream broke: look once, then listen again
            job = watch.feed(t.call(calls.get_job(self.id)))
            if report(job):
                assert job is not None
                return job
            watch.check()
            time.sleep(RECONNECT_S)


class AsyncJob(JobInfo):
    """An ingest job of an :class:`~lamina.client.AsyncLamina` client (methods return new snapshots)."""

    _transport: AsyncTransport | None = PrivateAttr(None)

    @classmethod
    def of(cls, data: dict[str, Any], transport: AsyncTransport) -> AsyncJob:
        job = cls.model_validate(data)
        job._transport = transport
        return job

    def _t(self) -> AsyncTransport:
        if self._transport is None:
            raise LaminaError("this job is not bound to a client; get it with client.jobs.get(id)")
        return self._transport

    async def refresh(self) -> AsyncJob:
        return AsyncJob.of(await self._t().call(calls.get_job(self.id)), self._t())

    async def cancel(self) -> AsyncJob:
        return AsyncJob.of(await self._t().call(calls.cancel_job(self.id)), self._t())

    async def resume(self) -> AsyncJob:
        return AsyncJob.of(await self._t().call(calls.resume_job(self.id)), self._t())

    async def wait(
        self, progress: Callable[[AsyncJob], object] | None = None, *, timeout: float | None = None
    ) -> AsyncJob:
        """As :meth:`Job.wait`; ``progress`` may be a plain function or a coroutine function."""
        t = self._t()
        watch = JobWatcher(lambda data: AsyncJob.of(data, t), self.id, timeout)

        async def report(job: AsyncJob | None) -> bool:
            if job is None:
                return False
            if progress is not None and inspect.isawaitable(result := progress(job)):
                await result
            return job.finished

        while True:
            try:
                response = await t.open(calls.job_events(self.id))
                try:
                    async for line in response.aiter_lines():
                        watch.check()
                        data = _event(line)
                        job = watch.feed(data) if data is not None else None
                        if await report(job):
                            assert job is not None
                            return job
                finally:
                    await response.aclose()
            except (APIConnectionError, httpx.TransportError):
                pass
            job = watch.feed(await t.call(calls.get_job(self.id)))
            if await report(job):
                assert job is not None
                return job
            watch.check()
            await asyncio.sleep(RECONNECT_S)
