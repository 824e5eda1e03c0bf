"""The usage page: requests, tokens, spend and latency over time per model or key, the request log,
and one request's detail (with its trace, when the server keeps spans)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from lamina.serve.observe.requestlog import LogFilter
from lamina.ui.charts import Chart, line_chart
from lamina.ui.pages import ms, num, usd
from lamina.ui.session import SessionDep, UIDep
from lamina.ui.traces import spans_for, waterfall
from lamina.ui.usage_data import PAGE, RANGES, Timeline, since, timeline

router = APIRouter(include_in_schema=False)
RangeKey = Literal["1h", "24h", "7d", "30d"]
By = Literal["model", "key"]
TITLES = {"requests": "Requests", "tokens": "Tokens", "spend": "Spend (USD)", "latency": "Mean latency"}
FORMATS = {"requests": num, "tokens": num, "spend": usd, "latency": ms}


def charts(t: Timeline) -> list[Chart]:
    return [
        line_chart(
            f"chart-{metric}",
            TITLES[metric],
            t.buckets,
            {s.name: s.values(metric) for s in t.series},
            FORMATS[metric],
            average=metric == "latency",
        )
        for metric in TITLES
    ]


@router.get("/usage")
async def usage_page(
    request: Request,
    ui: UIDep,
    session: SessionDep,
    period: Annotated[RangeKey, Query(alias="range")] = "24h",
    by: By = "model",
    model: str = "",
    key: str = "",
    status: str = "",
    before: int | None = None,
) -> Response:
    usage, principal = ui.state.services.usage, session.principal
    await usage.flush()  # what was just asked shows at once
    f = LogFilter(model=model, key=key, status=status, before=before)
    now = datetime.now(UTC)
    buckets, rows, options, totals = await asyncio.gather(
        usage.buckets(principal, since(period, now), RANGES[period].width, by),
        usage.requests(principal, f, PAGE),
        usage.choices(principal),
        usage.summary(principal, by),
    )
    t = timeline(buckets, period, by, now)
    params: dict[str, Any] = {"range": period, "by": by, "model": model, "key": key, "status": status}
    older = (
        urlencode({k: v for k, v in params.items() if v} | {"before": rows[-1]["id"]})
        if len(rows) >= PAGE
        else ""
    )
    return ui.pages.render(
        request,
        "usage.html",
        session=session,
        page="usage",
        charts=charts(t),
        series=[s.name for s in t.series],
        ranges=RANGES,
        period=period,
        period_label=RANGES[period].label,
        by=by,
        rows=rows,
        options=options,
        filters=params,
        older=older,
        totals=totals,
    )


@router.get("/usage/requests/{row_id}")
async def request_detail(request: Request, row_id: int, ui: UIDep, session: SessionDep) -> Response:
    row = await ui.state.services.usage.request(session.principal, row_id)
    if row is None:
        return ui.pages.render(
            request, "error.html", status=404, session=session, message="No such request in the log."
        )
    spans = waterfall(spans_for(ui.state, str(row["request_id"])))
    return ui.pages.render(request, "request.html", session=session, page="usage", row=row, spans=spans)
