"""The one internal surface over collections, documents, search, jobs, keys and usage.

The API routes (``serve/native``) and the web UI (``lamina.ui``) both call these services, so a page
can never bypass a check the API makes. Plain classes with narrow dependencies (the tenants'
workspaces, the job manager, the key store, the request log), no web framework; they raise
``lamina.serve.errors.APIError`` (a 404 for another tenant's object), which ``serve/http/errors.py``
turns into responses. Who may see which tenant is decided in :mod:`.access` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from lamina.serve.jobs.manager import JobManager
from lamina.serve.observe.requestlog import RequestLog
from lamina.serve.policy.keys import KeyStore
from lamina.serve.policy.limits import Limiter
from lamina.serve.policy.tenants import Tenants
from lamina.serve.services.collections import CollectionService
from lamina.serve.services.jobs import JobService
from lamina.serve.services.keys import KeyService
from lamina.serve.services.sources import SourceService
from lamina.serve.services.usage import UsageService
from lamina.serve.services.versions import VersionService

__all__ = ["CollectionService", "JobService", "KeyService", "Services", "SourceService", "UsageService"]


@dataclass(frozen=True)
class Services:
    collections: CollectionService
    jobs: JobService
    keys: KeyService
    sources: SourceService
    usage: UsageService
    versions: VersionService

    @classmethod
    def build(
        cls,
        *,
        tenants: Tenants,
        jobs: JobManager,
        keys: KeyStore,
        limiter: Limiter,
        forget_keys: Callable[[], None],
        engine: sa.Engine,
        request_log: RequestLog,
        max_upload_mb: float,
    ) -> Services:
        collections = CollectionService(tenants)
        return cls(
            collections=collections,
            jobs=JobService(jobs, collections, max_upload_mb=max_upload_mb),
            keys=KeyService(keys, limiter, forget_keys),
            sources=SourceService(collections, jobs),
            usage=UsageService(engine, request_log),
            versions=VersionService(collections, jobs),
        )
