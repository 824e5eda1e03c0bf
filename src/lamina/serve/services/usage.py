"""Usage and the request log, as a key may read them: its tenant's rows, or every tenant's for admins.

Depends on the request log (flushed first, so what was just asked shows at once) and its engine;
the SQL itself is in ``observe/requestlog.py`` and ``policy/costs.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import sqlalchemy as sa

from lamina.serve.observe import requestlog
from lamina.serve.observe.requestlog import LogFilter, RequestLog
from lamina.serve.policy.costs import usage
from lamina.serve.policy.keys import Principal
from lamina.serve.services.access import tenant_filter

__all__ = ["LogFilter", "UsageService"]


class UsageService:
    def __init__(self, engine: sa.Engine, log: RequestLog) -> None:
        self.engine = engine
        self.log = log

    async def flush(self) -> None:
        """Write the queued rows, so that what was just asked shows at once."""
        await self.log.flush()

    async def summary(self, principal: Principal, by: str, since: str | None = None) -> list[dict[str, Any]]:
        """Requests, tokens, spend, cache hits and errors per key, tenant or model."""
        await self.log.flush()
        return await asyncio.to_thread(usage, self.engine, by, since=since, tenant=tenant_filter(principal))

    async def recent(self, principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
        """The newest rows first, JSON-ready."""
        await self.log.flush()
        rows = await asyncio.to_thread(requestlog.recent, self.engine, limit, tenant=tenant_filter(principal))
        out: list[dict[str, Any]] = json.loads(json.dumps(rows, default=str))
        return out

    async def requests(self, principal: Principal, f: LogFilter, limit: int = 50) -> list[dict[str, Any]]:
        await self.log.flush()
        return await asyncio.to_thread(
            requestlog.filtered, self.engine, f, limit, tenant=tenant_filter(principal)
        )

    async def request(self, principal: Principal, row_id: int) -> dict[str, Any] | None:
        """One logged request, if the key may see it."""
        await self.log.flush()
        return await asyncio.to_thread(requestlog.one, self.engine, row_id, tenant=tenant_filter(principal))

    async def choices(self, principal: Principal) -> dict[str, list[str]]:
        return await asyncio.to_thread(requestlog.choices, self.engine, tenant=tenant_filter(principal))

    async def buckets(self, principal: Principal, since: str, width: int, by: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(
            requestlog.buckets, self.engine, since, width, by, tenant=tenant_filter(principal)
        )
