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
