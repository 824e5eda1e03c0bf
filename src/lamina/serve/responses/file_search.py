"""The built-in ``file_search`` tool over Lamina collections: a collection is a vector store, named
in ``vector_store_ids``. The last user message is the query; the answer is Lamina's grounded answer
(``serve/openai/grounded.py``), so it cites its sources with ``[n]`` markers, each also a
``file_citation`` annotation (the file id is the document's id). Lamina always searches when the tool
is offered (and ``tool_choice`` is not ``none``): the search is not left to a model's judgement."""

from __future__ import annotations

from typing import Any

from lamina.data.types import doc_id_for
from lamina.models.types import Message
from lamina.rag.answer import Answer
from lamina.rag.citations import find_markers
from lamina.rag.context import Source
from lamina.serve.openai.grounded import Links, question_and_turns
from lamina.serve.responses.protocol import ItemError, ResponsesRequest, new_id

RESULTS = "file_search_call.results"


def collection_of(body: ResponsesRequest) -> str | None:
    """The collection to search, or None when the request does not ask for a search."""
    tool = body.file_search
    if tool is None or body.tool_choice == "none":
        return None
    if body.functions:
        raise ItemError(
            "file_search cannot be combined with function tools (a grounded answer is one text, checked "
            "against the sources); offer the collection as a function tool (see /mcp) instead",
            "tools",
        )
    stores = tool["vector_store_ids"]
    if len(stores) != 1:
        raise ItemError("file_search takes one vector store (a collection name) per request", "tools")
    return str(stores[0])


SUPPORTED = ("eq", "in", "gt", "gte", "lt", "lte")


def filter_of(body: ResponsesRequest) -> dict[str, Any] | None:
    """The tool's ``filters`` (OpenAI's attribute filters: a comparison, or an ``and`` of them) as
    Lamina's metadata filter; what Lamina cannot honour (``ne``, ``nin``, ``or``) is refused."""
    tool = body.file_search or {}
    spec = tool.get("filters")
    if not spec:
        return None
    out: dict[str, dict[str, Any]] = {}
    for condition in _conditions(spec):
        kind, key = condition.get("type"), condition.get("key")
        if kind not in SUPPORTED or not isinstance(key, str):
            raise ItemError(
                f"file_search filters: {kind!r} is not supported; use eq, in, gt, gte, lt, lte and 'and'",
                "tools",
            )
        ops = out.setdefault(key, {})
        if f"${kind}" in ops:
            raise ItemError(f"file_search filters: {key} {kind} given twice", "tools")
        ops[f"${kind}"] = condition.get("value")
    return out


def _conditions(spec: Any) -> list[dict[str, Any]]:
    if not isinstance(spec, dict):
        raise ItemError("file_search filters must be an object", "tools")
    if spec.get("type") == "and":
        found: list[dict[str, Any]] = []
        for part in spec.get("filters") or []:
            found += _conditions(part)
        return found
    if spec.get("type") == "or":
        raise ItemError("file_search filters: 'or' is not supported; use 'and' (or $in on one key)", "tools")
    return [spec]


def question_of(history: list[Message]) -> tuple[str, list[tuple[str, str]]]:
    """The query (the last message, the user's) and earlier (question, answer) turns."""
    found = question_and_turns(history)
    if found is None:
        raise ItemError("with file_search, the input must end with the user's question")
    return found


def search_item(query: str, sources: list[Source], links: Links, body: ResponsesRequest) -> dict[str, Any]:
    """The ``file_search_call`` output item; its results only when ``include`` asks for them."""
    results = None
    if RESULTS in (body.include or []):
        results = [
            {
                "file_id": doc_id_for(s.hit.source),
                "filename": links.source_name(s.hit.source),
                "score": s.hit.score,
                "text": s.text,
                "attributes": {"page": s.hit.page, "n": s.n},
            }
            for s in sources
        ]
    return {
        "id": new_id("fs"),
        "type": "file_search_call",
        "status": "completed",
        "queries": [query],
        "results": results,
    }


def citations_of(answer: Answer, links: Links) -> list[dict[str, Any]]:
    """A ``file_citation`` per cited source, at its ``[n]`` marker."""
    cited = {c.n: c for c in answer.citations}
    return [
        {
            "type": "file_citation",
            "index": marker.start,
            "file_id": doc_id_for(cited[n].source),
            "filename": links.source_name(cited[n].source),
        }
        for marker in find_markers(answer.answer)
        for n in marker.numbers
        if n in cited
    ]
