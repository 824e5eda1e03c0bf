"""Small line charts drawn as SVG on the server: geometry here, markup in the ``chart`` macro.

No charting script is sent: a chart is a few polylines with presentation attributes (allowed by the
page's Content-Security-Policy), a title and description for screen readers, and the same numbers in
a table under it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

WIDTH, HEIGHT = 480, 170
LEFT, RIGHT, TOP, BOTTOM = 58, 10, 10, 24
X_LABELS = 6


@dataclass
class Line:
    name: str
    css: str  # s0 … s5: the series' colour in the stylesheet
    points: str
    total: float
    dots: list[tuple[float, float]] = field(default_factory=list)  # the non-zero points, when few


@dataclass
class Chart:
    id: str
    title: str
    lines: list[Line]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    summary: str
    rows: list[tuple[str, list[str]]]  # (bucket label, one value per line): buckets with any value
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return float(step * power)
    return float(10 * power)


def bucket_label(bucket: str) -> str:
    """``2026-11-05T12:34`` → ``12:34``; ``2026-11-05T12`` → ``12:00``; ``2026-11-05`` → ``11-05``."""
    if len(bucket) >= 16:
        return bucket[11:16]
    if len(bucket) == 13:
        return f"{bucket[11:13]}:00"
    return bucket[5:10]


def line_chart(
    chart_id: str,
    title: str,
    buckets: list[str],
    series: dict[str, list[float]],
    fmt: Callable[[float], str],
    *,
    average: bool = False,
) -> Chart:
    """One chart; ``average`` series (latency) are summed as request-weighted means elsewhere, not here."""
    n = len(buckets)
    peak = nice_ceiling(max((v for values in series.values() for v in values), default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return round(LEFT + (i * plot_w / (n - 1) if n > 1 else plot_w / 2), 1)

    def y(v: float) -> float:
        return round(TOP + plot_h - v / peak * plot_h, 1)

    lines = []
    for k, (name, values) in enumerate(series.items()):
        points = " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values))
        nonzero = [(x(i), y(v)) for i, v in enumerate(values) if v]
        total = max(values, default=0.0) if average else sum(values)
        lines.append(Line(name, f"s{k % 6}", points, total, nonzero if len(nonzero) <= 12 else []))
    y_ticks = [(y(peak * f), fmt(peak * f)) for f in (0.0, 0.5, 1.0)]
    every = max(1, math.ceil(n / X_LABELS))
    x_ticks = [(x(i), bucket_label(buckets[i])) for i in range(0, n, every)]
    rows = [
        (bucket_label(b), [fmt(values[i]) for values in series.values()])
        for i, b in enumerate(buckets)
        if any(values[i] for values in series.values())
    ]
    if not series:
        summary = "No requests in this period."
    else:
        word = "peak" if average else "total"
        summary = "; ".join(f"{line.name}: {word} {fmt(line.total)}" for line in lines) + "."
    return Chart(chart_id, title, lines, y_ticks, x_ticks, summary, rows)
