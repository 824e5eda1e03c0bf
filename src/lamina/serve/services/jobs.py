"""Ingest jobs: start one from uploaded files and URLs, read, cancel, resume and watch it.

Depends on the job manager and the collections service (a job is started only for a collection the
key sees). Another tenant's job is a 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from lamina.data.metadata import Given
from lamina.data.sources import is_url
from lamina.errors import LaminaError
from lamina.serve.errors import APIError, bad_request, not_found
from lamina.serve.jobs.manager import TERMINAL, Item, Job, JobManager
from lamina.serve.jobs.uploads import save, too_large
from lamina.serve.policy.keys import Principal
from lamina.serve.services.access import tenant_filter, tenant_for
from lamina.serve.services.collections import CollectionService

__all__ = ["EVENT_POLL_S", "KEEPALIVE_S", "IncomingFile", "JobService"]

EVENT_POLL_S = 0.2
KEEPALIVE_S = 15.0


class IncomingFile(Protocol):
    """An uploaded file as the web framework hands it over (Starlette's ``UploadFile`` is one)."""

    @property
    def filename(self) -> str | None: ...

    @property
    def size(self) -> int | None: ...

    async def read(self, size: int = -1) -> bytes: ...


class JobService:
    def __init__(self, manager: JobManager, collections: CollectionService, *, max_upload_mb: float) -> None:
        self.manager = manager
        self.collections = collections
        self.max_upload_mb = max_upload_mb

    def get(self, principal: Principal, job_id: str) -> Job:
        job = self.manager.get(job_id, tenant_filter(principal))
        if job is None:
            raise not_found("job", job_id, param="id")
        return job

    def list(
        self, principal: Principal, *, tenant: str | None = None, collection: str | None = None
    ) -> list[Job]:
        """Recent jobs the key sees (of one tenant when named, of one collection when named)."""
        jobs = self.manager.list(
            tenant_filter(principal) if tenant is None else tenant_for(principal, tenant)
        )
        return [j for j in jobs if collection is None or j.collection == collection]

    async def cancel(self, principal: Principal, job_id: str) -> Job:
        job = self.get(principal, job_id)
        if job.state in TERMINAL:
            raise APIError(409, f"job {job_id} has already ended ({job.state})", code="job_ended")
        return await asyncio.to_thread(self.manager.cancel, job)

    async def resume(self, principal: Principal, job_id: str) -> Job:
        job = self.get(principal, job_id)
        try:
            return await asyncio.to_thread(self.manager.resume, job)
        except LaminaError as exc:
            raise APIError(409, str(exc), code="not_resumable") from None

    async def start_ingest(
        self,
        principal: Principal,
        name: str,
        files: Sequence[IncomingFile] = (),
        urls: Sequence[str] = (),
        tenant: str | None = None,
        given: Given | None = None,
    ) -> Job:
        """Save the files in the collection's upload folder and queue one job for them and the URLs
        (``given``: the metadata and readers of every document)."""
        t = tenant_for(principal, tenant)
        await self.collections.open(principal, name, t)
        if not files and not urls:
            raise bad_request(
                "send files (multipart field 'files') and/or URLs (field 'urls')", param="files"
            )
        limit = int(self.max_upload_mb * 1024 * 1024)
        for f in files:
            if f.size is not None and f.size > limit:
                raise too_large(f"file {f.filename!r}", f.size, self.max_upload_mb)
        for url in urls:
            if not is_url(url):
                raise bad_request(f"not an http(s) URL: {url[:200]!r}", param="urls")
        folder = self.collections.uploads_dir(principal, name, t)
        items: list[Item] = []
        for f in files:
            data = await f.read()
            if len(data) > limit:
                raise too_large(f"file {f.filename!r}", len(data), self.max_upload_mb)
            path = await asyncio.to_thread(save, folder, f.filename or "", data)
            items.append(Item(str(path), path.name))
        items += [Item(url, url) for url in urls]
        items = list({i.source: i for i in items}.values())  # the same name twice is one document
        options = {"metadata": dict(given.metadata), "readers": list(given.readers)} if given else {}
        return await asyncio.to_thread(self.manager.submit, t, name, items, "ingest", options)

    async def watch(
        self, job: Job, disconnected: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[dict[str, Any] | None]:
        """The job each time it moves, until it ends or the reader leaves; ``None`` asks for a keep-alive.

        Read from the job table, so a job that another replica's worker runs streams from this one."""
        seen, quiet = -1, 0.0
        while True:
            fresh = await asyncio.to_thread(self.manager.get, job.id, None)
            job = fresh or job
            if job.version != seen:
                seen, quiet = job.version, 0.0
                yield job.to_dict()
                if job.state in TERMINAL:
                    return
            elif quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield None
            if await disconnected():
                return
            await asyncio.sleep(EVENT_POLL_S)
            quiet += EVENT_POLL_S
