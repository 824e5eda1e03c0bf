"""The usage page's charts: time ranges, and the request log's bucket rows laid out as series.

No SQL here: the rows come from ``state.services.usage`` (aggregated in SQL, one row per time bucket
and series, so the page costs the same with a million logged requests as with ten), which also
decides whose rows a key sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

By = Literal["model", "key"]
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


def since(range_key: str, now: datetime) -> str:
    """The ISO time a range starts at."""
    return (now - RANGES[range_key].span).isoformat(timespec="milliseconds")


def timeline(rows: list[dict[str, Any]], range_key: str, by: By, now: datetime) -> Timeline:
    """Bucket rows (``services.usage.buckets``) as one series per model or key, busiest first."""
    r = RANGES[range_key]
    buckets = _bucket_names(r, now)
    index = {b: i for i, b in enumerate(buckets)}
    unnamed = "(no model)" if by == "model" else "(no key)"
    totals: dict[str, float] = {}
    for row in rows:
        name = row["name"] or unnamed
        totals[name] = totals.get(name, 0) + row["requests"]
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    kept = set(ranked[:MAX_SERIES])
    series: dict[str, Series] = {}
    for row in rows:
        name = row["name"] or unnamed
        name = name if name in kept else "other"
        i = index.get(row["bucket"])
        if i is None:
            continue
        s = series.setdefault(name, Series(name, *([0.0] * len(buckets) for _ in range(4))))
        s.requests[i] += row["requests"]
        s.tokens[i] += float(row["tokens"] or 0)
        s.spend[i] += float(row["spend"] or 0)
        s.latency_sum[i] += float(row["latency_sum"] or 0)
    order = [n for n in ranked if n in series] + (["other"] if "other" in series else [])
    return Timeline(buckets, [series[n] for n in order])
