"""Collection versions over HTTP, for admins: list, reindex (a job), switch, roll back, drop.

The same operations as ``lamina versions``/``reindex``/``switch``/``rollback``, on the tenant the
admin acts for; another tenant's collection is a 404 as everywhere.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lamina.errors import CollectionNotFound, LaminaError
from lamina.serve.errors import APIError, not_found
from lamina.serve.jobs.manager import Item, Job, JobManager
from lamina.serve.jobs.uploads import public_source
from lamina.serve.policy.keys import Principal
from lamina.serve.services.access import require_admin, tenant_for
from lamina.serve.services.collections import CollectionService

__all__ = ["VersionService"]


class VersionService:
    def __init__(self, collections: CollectionService, jobs: JobManager) -> None:
        self.collections = collections
        self.jobs = jobs

    async def list(self, principal: Principal, name: str, tenant: str | None = None) -> list[dict[str, Any]]:
        coll = await self._open(principal, name, tenant)
        found = await asyncio.to_thread(coll.workspace.versions.list, name)
        return [v.to_dict() for v in found]

    async def reindex(
        self, principal: Principal, name: str, options: dict[str, Any], tenant: str | None = None
    ) -> Job:
        """Queue a job that builds a new version from the live one's documents (files: its items)."""
        coll = await self._open(principal, name, tenant)
        docs = await asyncio.to_thread(coll.documents)
        uploads = self.collections.uploads_dir(principal, name, tenant)
        items = [Item(d.source, public_source(d.source, uploads)) for d in docs]
        t = tenant_for(principal, tenant)
        return await asyncio.to_thread(self.jobs.submit, t, name, items, "reindex", options)

    async def switch(
        self, principal: Principal, name: str, version: int, tenant: str | None = None
    ) -> dict[str, Any]:
        coll = await self._open(principal, name, tenant)
        return await self._act(coll.workspace.versions.switch, name, version)

    async def rollback(self, principal: Principal, name: str, tenant: str | None = None) -> dict[str, Any]:
        coll = await self._open(principal, name, tenant)
        return await self._act(coll.workspace.versions.rollback, name)

    async def drop(
        self, principal: Principal, name: str, version: int, tenant: str | None = None
    ) -> dict[str, Any]:
        coll = await self._open(principal, name, tenant)
        return await self._act(coll.workspace.drop_version, name, version)

    async def _open(self, principal: Principal, name: str, tenant: str | None) -> Any:
        require_admin(principal)
        return await self.collections.open(principal, name, tenant)

    @staticmethod
    async def _act(action: Any, *args: Any) -> dict[str, Any]:
        try:
            version = await asyncio.to_thread(action, *args)
        except CollectionNotFound as exc:
            raise not_found("version", str(args[-1]), param="version") from exc
        except LaminaError as exc:
            raise APIError(409, str(exc), code="version_conflict") from None
        return dict(version.to_dict())
