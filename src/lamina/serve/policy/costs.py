"""What a request costs: its tokens times the prices configured for its model (or the embedder).

Local models cost 0 unless a price is configured (a team may charge GPU time back). The price is
computed once, when the request's record is made, and stored with it: later price changes never
rewrite history.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from lamina.config import Settings
from lamina.serve.db import request_log
from lamina.serve.observe.requestlog import LogRecord

MILLION = 1_000_000
GROUPS = {"key": request_log.c.key_name, "tenant": request_log.c.tenant, "model": request_log.c.model}


def price(settings: Settings, record: LogRecord, embedder_names: set[str]) -> float:
    """USD for one request; cached answers cost nothing."""
    if record.cached or not record.model:
        return 0.0
    if record.model in embedder_names:
        return record.embedding_tokens * settings.embedding.price_per_mtok / MILLION
    spec = settings.models.get(record.model)
    if spec is None:
        return 0.0
    return (
        record.prompt_tokens * spec.price_input_per_mtok
        + record.completion_tokens * spec.price_output_per_mtok
    ) / MILLION


def usage(
    engine: sa.Engine, by: str, *, since: str | None = None, tenant: str | None = None
) -> list[dict[str, Any]]:
    """Requests, tokens, spend and cache hits per key, tenant or model (``lamina usage``)."""
    group = GROUPS[by]
    c = request_log.c
    query = (
        sa.select(
            group.label(by),
            sa.func.count().label("requests"),
            sa.func.sum(c.prompt_tokens).label("prompt_tokens"),
            sa.func.sum(c.completion_tokens).label("completion_tokens"),
            sa.func.sum(c.embedding_tokens).label("embedding_tokens"),
            sa.func.sum(c.cost_usd).label("spend_usd"),
            sa.func.sum(sa.case((c.cached, 1), else_=0)).label("cache_hits"),
            sa.func.sum(sa.case((c.status >= 400, 1), else_=0)).label("errors"),
        )
        .group_by(group)
        .order_by(sa.func.sum(c.cost_usd).desc(), sa.func.count().desc())
    )
    if since is not None:
        query = query.where(c.time >= since)
    if tenant is not None:
        query = query.where(c.tenant == tenant)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["spend_usd"] = round(float(row["spend_usd"] or 0), 6)
        for k in ("prompt_tokens", "completion_tokens", "embedding_tokens", "cache_hits", "errors"):
            row[k] = int(row[k] or 0)
    return rows
