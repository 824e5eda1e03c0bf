"""What the usage page reads from the request log: totals over time per model or key, and the log itself.

Everything is aggregated in SQL (one row per time bucket and series), so the page costs the same with a
million logged requests as with ten. A non-admin sees only its tenant's rows, as with ``/v1/usage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from lamina.serve.db import request_log
from lamina.serve.policy.keys import Principal
from lamina.ui.session import visible_tenant

c = request_log.c
By = Literal["model", "key"]
METRICS = ("requests", "tokens", "spend", "latency")
MAX_SERIES = 5  # the busiest few series by name; the rest add up to "other"
PAGE = 50


@dataclass(frozen=True)
class Range:
    label: str
    span: timedelta
    step: timedelta
    width: int  # characters of an ISO time that name its bucket


RANGES = {
    "1h": Range("last hour", timedelta(hours=1), timedelta(minutes=1), 16),
    "24h": Range("last 24 hours", timedelta(hours=24), timedelta(hours=1), 13),
    "7d": Range("last 7 days", timedelta(days=7), timedelta(days=1), 10),
    "30d": Range("last 30 days", timedelta(days=30), timedelta(days=1), 10),
}


@dataclass
class Series:
    name: str
    requests: list[float]
    tokens: list[float]
    spend: list[float]
    latency_sum: list[float]

    def values(self, metric: str) -> list[float]:
        if metric == "latency":
            return [s / n if n else 0.0 for s, n in zip(self.latency_sum, self.requests, strict=True)]
        values: list[float] = getattr(self, metric)
        return values


@dataclass
class Timeline:
    buckets: list[str]  # bucket names (ISO prefixes), oldest first
    series: list[Series]


def _bucket_names(r: Range, now: datetime) -> list[str]:
    start = now - r.span
    if r.step == timedelta(minutes=1):
        t = start.replace(second=0, microsecond=0)
    elif r.step == timedelta(hours=1):
        t = start.replace(minute=0, second=0, microsecond=0)
    else:
        t = start.replace(hour=0, minute=0, second=0, microsecond=0)
    names = []
    while t <= now:
        names.append(t.isoformat()[: r.width])
        t += r.step
    return names


def timeline(engine: sa.Engine, principal: Principal, range_key: str, by: By) -> Timeline:
    r = RANGES[range_key]
    now = datetime.now(UTC)
    since = (now - r.span).isoformat(timespec="milliseconds")
    bucket = sa.func.substr(c.time, 1, r.width)
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
    tenant = visible_tenant(principal)
    if tenant is not None:
        query = query.where(c.tenant == tenant)
    with engine.connect() as conn:
        rows = list(conn.execute(query))
    buckets = _bucket_names(r, now)
    index = {b: i for i, b in enumerate(buckets)}
    totals: dict[str, float] = {}
    for row in rows:
        name = row.name or ("(no model)" if by == "model" else "(no key)")
        totals[name] = totals.get(name, 0) + row.requests
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    kept = set(ranked[:MAX_SERIES])
    series: dict[str, Series] = {}
    for row in rows:
        name = row.name or ("(no model)" if by == "model" else "(no key)")
        name = name if name in kept else "other"
        i = index.get(row.bucket)
        if i is None:
            continue
        s = series.setdefault(name, Series(name, *([0.0] * len(buckets) for _ in range(4))))
        s.requests[i] += row.requests
        s.tokens[i] += float(row.tokens or 0)
        s.spend[i] += float(row.spend or 0)
        s.latency_sum[i] += float(row.latency_sum or 0)
    order = [n for n in ranked if n in series] + (["other"] if "other" in series else [])
    return Timeline(buckets, [series[n] for n in order])


@dataclass
class LogFilter:
    model: str = ""
    key: str = ""
    status: str = ""  # "", "ok", "error" or a status code
    before: int | None = None  # paging: rows older than this id


def log_rows(
    engine: sa.Engine, principal: Principal, f: LogFilter, limit: int = PAGE
) -> list[dict[str, Any]]:
    query = sa.select(request_log).order_by(c.id.desc()).limit(limit)
    tenant = visible_tenant(principal)
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


def log_choices(engine: sa.Engine, principal: Principal) -> dict[str, list[str]]:
    """Values the filters offer: models, keys and statuses seen in the log."""
    tenant = visible_tenant(principal)
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, col in (("models", c.model), ("key_names", c.key_name), ("statuses", c.status)):
            query = sa.select(col).distinct().where(col.is_not(None)).order_by(col).limit(200)
            if tenant is not None:
                query = query.where(c.tenant == tenant)
            out[name] = [str(v) for (v,) in conn.execute(query)]
    return out


def log_row(engine: sa.Engine, principal: Principal, row_id: int) -> dict[str, Any] | None:
    query = sa.select(request_log).where(c.id == row_id)
    tenant = visible_tenant(principal)
    if tenant is not None:
        query = query.where(c.tenant == tenant)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return dict(row._mapping) if row is not None else None
