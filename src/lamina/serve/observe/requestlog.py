"""The request log: one row per API request, queued on the request path and written in batches.

The queue is bounded; if the database falls behind by that much, rows are dropped and counted
rather than letting memory grow.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from lamina.serve.db import request_log

log = logging.getLogger("lamina.serve")
QUEUE_LIMIT = 50_000


@dataclass
class LogRecord:
    time: str
    request_id: str
    method: str
    route: str
    status: int
    latency_ms: float
    key_name: str | None = None
    tenant: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_tokens: int = 0
    ttft_ms: float | None = None
    error_type: str | None = None
    cost_usd: float = 0.0
    cached: bool = False


class RequestLog:
    def __init__(self, engine: sa.Engine, flush_seconds: float = 0.5, *, enabled: bool = True) -> None:
        self.engine = engine
        self.flush_seconds = flush_seconds
        self.enabled = enabled
        self.dropped = 0
        self._queue: asyncio.Queue[LogRecord] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    def add(self, record: LogRecord) -> None:
        if not self.enabled:
            return
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="request-log")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        rows: list[dict[str, Any]] = []
        while not self._queue.empty():
            rows.append(asdict(self._queue.get_nowait()))
        if rows:
            await asyncio.to_thread(self._write, rows)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:  # a full disk must not take the server down; say so and go on
                log.exception("request log: could not write a batch")

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(request_log), rows)


def recent(engine: sa.Engine, limit: int = 20, *, tenant: str | None = None) -> list[dict[str, Any]]:
    """The newest rows first (``lamina logs``, ``GET /v1/logs``)."""
    query = sa.select(request_log).order_by(request_log.c.id.desc()).limit(limit)
    if tenant is not None:
        query = query.where(request_log.c.tenant == tenant)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
