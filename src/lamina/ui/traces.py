"""The trace slot of a request's detail page: spans, when the server keeps them, drawn as a waterfall.

The server may expose recent spans as ``state.recent_spans``: either a callable taking a request id
and returning that request's spans, or an iterable of spans (filtered here by request id). A span is a
dict; the fields read are ``name``, ``span_id``, ``parent_id`` (or ``parent_span_id``), a start
(``start_ms``, or ``start_time`` / ``start_time_unix_nano`` in ns) and a duration (``duration_ms``, or
``end_time`` / ``end_time_unix_nano``), ``status`` and ``attributes``. Without spans, nothing is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

REQUEST_ID_KEYS = ("request_id", "lamina.request_id", "http.request_id")


def spans_for(state: object, request_id: str) -> list[dict[str, Any]]:
    """This request's spans from ``state.recent_spans``, or ``[]`` when the server keeps none."""
    source: Callable[[str], Iterable[Mapping[str, Any]]] | Iterable[Mapping[str, Any]] | None = getattr(
        state, "recent_spans", None
    )
    if source is None:
        return []
    try:
        found = (
            source(request_id)
            if callable(source)
            else [s for s in list(source) if _request_id(s) == request_id]
        )
        return [dict(s) for s in found if isinstance(s, Mapping)]
    except Exception:  # a trace is a nicety: a broken span source never breaks the page
        return []


def _request_id(span: Mapping[str, Any]) -> str | None:
    attrs = span.get("attributes") or {}
    for key in REQUEST_ID_KEYS:
        value = span.get(key) or (attrs.get(key) if isinstance(attrs, Mapping) else None)
        if value:
            return str(value)
    return None


def _ms(span: Mapping[str, Any], ms_key: str, time_keys: tuple[str, ...]) -> float | None:
    if span.get(ms_key) is not None:
        return float(span[ms_key])
    for key in time_keys:
        if span.get(key) is not None:
            return float(span[key]) / 1e6  # nanoseconds
    return None


@dataclass
class SpanRow:
    name: str
    depth: int
    start_ms: float  # from the first span's start
    duration_ms: float
    x: float  # 0-100: where its bar starts
    width: float  # 0-100
    status: str
    attributes: dict[str, Any]


def waterfall(spans: list[dict[str, Any]]) -> list[SpanRow]:
    """Spans in start order with their depth under their parents, placed on a 0-100 scale."""
    timed = []
    for s in spans:
        start = _ms(s, "start_ms", ("start_time_unix_nano", "start_time"))
        duration = _ms(s, "duration_ms", ())
        if duration is None:
            end = _ms(s, "end_ms", ("end_time_unix_nano", "end_time"))
            duration = (end - start) if end is not None and start is not None else 0.0
        timed.append((start or 0.0, max(duration, 0.0), s))
    if not timed:
        return []
    origin = min(t[0] for t in timed)
    total = max(t[0] + t[1] for t in timed) - origin or 1.0
    parents = {
        str(s.get("span_id")): str(s.get("parent_id") or s.get("parent_span_id") or "") for _, _, s in timed
    }

    def depth(span_id: str, seen: int = 0) -> int:
        parent = parents.get(span_id, "")
        return 0 if not parent or parent not in parents or seen > 20 else 1 + depth(parent, seen + 1)

    rows = []
    for start, duration, s in sorted(timed, key=lambda t: t[0]):
        attrs = s.get("attributes") or {}
        rows.append(
            SpanRow(
                name=str(s.get("name", "span")),
                depth=depth(str(s.get("span_id"))),
                start_ms=start - origin,
                duration_ms=duration,
                x=round((start - origin) / total * 100, 2),
                width=max(round(duration / total * 100, 2), 0.5),
                status=str(s.get("status") or ""),
                attributes=dict(attrs) if isinstance(attrs, Mapping) else {},
            )
        )
    return rows
