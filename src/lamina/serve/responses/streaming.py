"""The Responses API's streamed events, written from the engine's pieces.

``response.created`` and ``response.in_progress``; per output item ``response.output_item.added``,
its deltas (``response.output_text.delta`` inside a ``content_part``, or
``response.function_call_arguments.delta`` with the arguments' JSON pieces as the model writes
them), its ``.done`` events and ``response.output_item.done``; then ``response.completed`` (or
``response.incomplete``) with the whole response. A stream the model breaks ends with
``response.failed``: never a completed response. Every event carries its ``sequence_number``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from lamina.engine.events import Piece
from lamina.serve.responses.protocol import call_item, message_item, output_text

Snapshot = Callable[..., dict[str, Any]]  # the response object at a moment (see serving)


class EventWriter:
    """One streamed response: items opened, filled and closed as pieces arrive; ``output`` is what
    has been written, for the final response."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.output: list[dict[str, Any]] = []
        self._sequence = 0
        self._open: dict[str, Any] | None = None  # the item being written
        self._call: int | None = None  # the tool call (its index among the choice's calls) being written

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    def start(self) -> Iterator[bytes]:
        response = self.snapshot([], None, status="in_progress")
        yield self.event("response.created", response=response)
        yield self.event("response.in_progress", response=response)

    @property
    def _index(self) -> int:
        return len(self.output) - 1

    def add(self, item: dict[str, Any]) -> Iterator[bytes]:
        """Open an item (closing the one before)."""
        yield from self.close()
        self.output.append(item)
        self._open = item
        yield self.event("response.output_item.added", output_index=self._index, item=item)
        if item["type"] == "message":
            part = output_text("")
            yield self.event(
                "response.content_part.added", item_id=item["id"], output_index=self._index,
                content_index=0, part=part,
            )  # fmt: skip

    def whole(self, item: dict[str, Any], *between: str) -> Iterator[bytes]:
        """An item that is done when it appears (a file search), with its own progress events."""
        yield from self.add(dict(item, status="in_progress"))
        for kind in between:
            yield self.event(kind, output_index=self._index, item_id=item["id"])
        self.output[-1] = item
        self._open = None
        yield self.event("response.output_item.done", output_index=self._index, item=item)

    def text(self, delta: str) -> Iterator[bytes]:
        if not delta:
            return
        if self._open is None or self._open["type"] != "message":
            yield from self.add(message_item("", status="in_progress"))
        assert self._open is not None
        self._open["content"][0]["text"] += delta
        yield self.event(
            "response.output_text.delta", item_id=self._open["id"], output_index=self._index,
            content_index=0, delta=delta, logprobs=[],
        )  # fmt: skip

    def annotate(self, annotations: list[dict[str, Any]]) -> Iterator[bytes]:
        """Citations of the open message's text (a grounded answer's, known at its end)."""
        if self._open is None or self._open["type"] != "message":
            return
        part = self._open["content"][0]
        for annotation in annotations:
            yield self.event(
                "response.output_text.annotation.added", item_id=self._open["id"],
                output_index=self._index, content_index=0,
                annotation_index=len(part["annotations"]), annotation=annotation,
            )  # fmt: skip
            part["annotations"].append(annotation)

    def piece(self, piece: Piece) -> Iterator[bytes]:
        if piece.index != 0:
            return
        yield from self.text(piece.text)
        for call in piece.tool_calls:
            number = call.get("index", 0)
            if self._open is None or self._open["type"] != "function_call" or number != self._call:
                self._call = number
                yield from self.add(
                    call_item(
                        {**call, "function": {**(call.get("function") or {}), "arguments": ""}},
                        status="in_progress",
                    )
                )
            assert self._open is not None
            if arguments := (call.get("function") or {}).get("arguments"):
                self._open["arguments"] += arguments
                yield self.event(
                    "response.function_call_arguments.delta", item_id=self._open["id"],
                    output_index=self._index, delta=arguments,
                )  # fmt: skip

    def close(self) -> Iterator[bytes]:
        item, self._open = self._open, None
        if item is None:
            return
        item["status"] = "completed"
        where = {"item_id": item["id"], "output_index": self._index}
        if item["type"] == "message":
            part = item["content"][0]
            yield self.event(
                "response.output_text.done", **where, content_index=0, text=part["text"], logprobs=[]
            )
            yield self.event("response.content_part.done", **where, content_index=0, part=part)
        elif item["type"] == "function_call":
            yield self.event(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=item["arguments"],
            )
        yield self.event("response.output_item.done", output_index=self._index, item=item)

    def finish(self, response: dict[str, Any]) -> Iterator[bytes]:
        yield from self.close()
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        yield self.event(kind, response=response)

    def failed(self, message: str) -> bytes:
        error = {"code": "server_error", "message": message}
        return self.event(
            "response.failed", response=self.snapshot(self.output, None, status="failed", error=error)
        )
