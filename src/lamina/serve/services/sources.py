"""A collection's sources over the API and the UI: anyone of the tenant may list them; only admins
add, remove or sync one, since a source reads from the server's side (its folders, its network).

A sync asked for here is not run in the request: the source is marked due, and the next free worker
(this server's, another replica's, or a ``lamina worker``) syncs it under the source's lease.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lamina.data.connectors import parse_spec
from lamina.data.filters import check_groups, check_metadata
from lamina.data.source_store import SourceNotFound, SourceStore
from lamina.data.syncing import remove_source
from lamina.errors import LaminaError
from lamina.serve.errors import bad_request, not_found
from lamina.serve.jobs.manager import JobManager
from lamina.serve.policy.keys import Principal
from lamina.serve.services.access import require_admin
from lamina.serve.services.collections import CollectionService


class SourceService:
    def __init__(self, collections: CollectionService, jobs: JobManager) -> None:
        self.collections = collections
        self.jobs = jobs

    async def _store(self, principal: Principal, name: str, tenant: str | None) -> SourceStore:
        coll = await self.collections.open(principal, name, tenant)  # 404 for another tenant's
        return SourceStore(coll.workspace.registry.engine)

    async def list(self, principal: Principal, name: str, tenant: str | None = None) -> list[dict[str, Any]]:
        store = await self._store(principal, name, tenant)
        return [r.to_dict() for r in await asyncio.to_thread(store.list, name)]

    async def put(
        self, principal: Principal, name: str, body: dict[str, Any], tenant: str | None = None
    ) -> dict[str, Any]:
        require_admin(principal)
        store = await self._store(principal, name, tenant)
        try:
            record = await asyncio.to_thread(
                store.put,
                name,
                str(body["name"]),
                parse_spec(body["spec"]),
                every_s=body.get("every_s"),
                readers=check_groups(body.get("readers")),
                metadata=check_metadata(body.get("metadata")),
            )
        except LaminaError as exc:  # an invalid spec, name, schedule, group or metadata
            raise bad_request(str(exc), param="spec") from None
        self.jobs.sources_now()
        return record.to_dict()

    async def remove(
        self, principal: Principal, name: str, source: str, keep_documents: bool, tenant: str | None = None
    ) -> int:
        require_admin(principal)
        coll = await self.collections.open(principal, name, tenant)
        try:
            return await asyncio.to_thread(
                remove_source, coll.workspace, name, source, keep_documents=keep_documents
            )
        except SourceNotFound:
            raise not_found("source", source, param="source") from None

    async def sync(
        self, principal: Principal, name: str, source: str, tenant: str | None = None
    ) -> dict[str, Any]:
        require_admin(principal)
        store = await self._store(principal, name, tenant)
        try:
            record = await asyncio.to_thread(store.get, name, source)
        except SourceNotFound:
            raise not_found("source", source, param="source") from None
        await asyncio.to_thread(store.request, record.id)
        self.jobs.sources_now()
        return (await asyncio.to_thread(store.get, name, source)).to_dict()


__all__ = ["SourceService"]
