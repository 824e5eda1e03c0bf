"""The request log: one row per API request, queued on the request path and written in batches.

The queue is bounded; if the database falls behind by that much, rows are dropped and counted
rather than letting memory grow. The queries below (with ``policy/costs.usage``) are everything that
reads the log; ``tenant=None`` reads every tenant's rows.
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
    finish_reason: str | None = None
    tool_calls: int = 0
    tool_names: str | None = None


class RequestLog:
    def __init__(self, engine: sa.Engine, flush_seconds: float = 0.5, *, enabled: bool = True) -> None:
        self.engine = engine
        self.flush_seconds = flush_seconds
        self.enabled = enabled
        self.dropped = 0
        self._queue: asyncio.Queue[LogRecord] = asyncio.Queue(QUEUE_LIMIT)
        self._unwritten: list[dict[str, Any]] = []  # a batch the database refused: tried again next time
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
        """Write what is queued. If the database refuses (it is down), the rows are kept and tried
        again at the next flush, up to ``QUEUE_LIMIT`` of them (beyond, the oldest are dropped)."""
        rows, self._unwritten = self._unwritten, []
        while not self._queue.empty():
            rows.append(asdict(self._queue.get_nowait()))
        if not rows:
            return
        try:
            await asyncio.to_thread(self._write, rows)
        except Exception:
            overflow = max(0, len(rows) - QUEUE_LIMIT)
            self.dropped += overflow
            self._unwritten = rows[overflow:]
            raise

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # a full disk or a database away must not take the server down
                if not failing:  # once per outage, not twice a second
                    log.warning("request log: could not write (%s); keeping the rows to try again", exc)
                failing = True
            else:
                if failing:
                    log.info("request log: written again")
                failing = False

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


@dataclass
class LogFilter:
    model: str = ""
    key: str = ""
    status: str = ""  # "", "ok", "error" or a status code
    before: int | None = None  # paging: rows older than this id


def filtered(
    engine: sa.Engine, f: LogFilter, limit: int = 50, *, tenant: str | None = None
) -> list[dict[str, Any]]:
    """The newest rows that pass the filter (the web UI's request log)."""
    c = request_log.c
    query = sa.select(request_log).order_by(c.id.desc()).limit(limit)
    if tenant is not None:
        query = query.where(c.tenant == tenant)
    if f.model:
        query = query.where(c.model == f.model)
    if f.key:
        query = query.where(c.key_name == f.key)
    if f.status == "ok":
        query = query.where(c.status < 400)
    elif f.status == "error":
        query = query.where(c.status >= 400)
    elif f.status.isdigit():
        query = query.where(c.status == int(f.status))
    if f.before is not None:
        query = query.where(c.id < f.before)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def one(engine: sa.Engine, row_id: int, *, tenant: str | None = None) -> dict[str, Any] | None:
    query = sa.select(request_log).where(request_log.c.id == row_id)
    if tenant is not None:
        query = query.where(request_log.c.tenant == tenant)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return dict(row._mapping) if row is not None else None


def choices(engine: sa.Engine, *, tenant: str | None = None) -> dict[str, list[str]]:
    """Values a filter can offer: the models, key names and statuses seen in the log."""
    c = request_log.c
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, col in (("models", c.model), ("key_names", c.key_name), ("statuses", c.status)):
            query = sa.select(col).distinct().where(col.is_not(None)).order_by(col).limit(200)
            if tenant is not None:
                query = query.where(c.tenant == tenant)
            out[name] = [str(v) for (v,) in conn.execute(query)]
    return out


def buckets(
    engine: sa.Engine, since: str, width: int, by: str, *, tenant: str | None = None
) -> list[dict[str, Any]]:
    """Requests, tokens, spend and summed latency per time bucket (``width`` characters of the ISO
    time) and model or key, from ``since`` on: aggregated in SQL, so a long log costs no more."""
    c = request_log.c
    bucket = sa.func.substr(c.time, 1, width)
    group = c.model if by == "model" else c.key_name
    query = (
        sa.select(
            bucket.label("bucket"),
            group.label("name"),
            sa.func.count().label("requests"),
            sa.func.sum(c.prompt_tokens + c.completion_tokens + c.embedding_tokens).label("tokens"),
            sa.func.sum(c.cost_usd).label("spend"),
            sa.func.sum(c.latency_ms).label("latency_sum"),
        )
        .where(c.time >= since)
        .group_by(bucket, group)
    )
    if tenant is not None:
        query = query.where(c.tenant == tenant)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
