"""The UI's pieces that need no browser: a request's trace as a waterfall, grouped citation markers."""

from __future__ import annotations

from typing import Any, ClassVar


def test_trace_slot_renders_spans() -> None:
    from lamina.ui.assets import Assets
    from lamina.ui.pages import Pages
    from lamina.ui.traces import spans_for, waterfall

    class WithSpans:
        recent_spans: ClassVar[list[dict[str, Any]]] = [
            {
                "name": "POST /v1/chat/completions",
                "span_id": "a",
                "start_ms": 0,
                "duration_ms": 40,
                "attributes": {"request_id": "req_1"},
            },
            {
                "name": "retrieve",
                "span_id": "b",
                "parent_id": "a",
                "start_ms": 2,
                "duration_ms": 8,
                "attributes": {"request_id": "req_1"},
            },
            {
                "name": "other request",
                "span_id": "c",
                "start_ms": 0,
                "duration_ms": 1,
                "attributes": {"request_id": "req_2"},
            },
        ]

    assert spans_for(object(), "req_1") == []
    rows = waterfall(spans_for(WithSpans(), "req_1"))
    assert [(r.name, r.depth) for r in rows] == [("POST /v1/chat/completions", 0), ("retrieve", 1)]
    assert rows[1].x == 5.0 and rows[1].width == 20.0
    html = Pages(Assets()).html("_spans.html", spans=rows)
    assert "Trace" in html and "retrieve" in html
    assert "Trace" not in Pages(Assets()).html("_spans.html", spans=[])


def test_grouped_markers_become_one_link_each() -> None:
    from lamina.ui.citations import Segment, cited, segments

    answer = "Jobs resume [1, 2]; see [3] and [9]."
    assert segments(answer, {1, 2, 3}) == [
        Segment("Jobs resume "),
        Segment("[1]", 1),
        Segment("[2]", 2),
        Segment("; see "),
        Segment("[3]", 3),
        Segment(" and [9]."),  # a number with no citation stays text
    ]
    assert segments("[7, 2]", {2}) == [Segment("[2]", 2)]
    citations = [{"n": n, "url": f"http://127.0.0.1:1/v1/x/{n}"} for n in (1, 2, 3)]
    assert [(c["n"], c["url"]) for c in cited(answer, citations)] == [
        (1, "/v1/x/1"),
        (2, "/v1/x/2"),
        (3, "/v1/x/3"),
    ]
