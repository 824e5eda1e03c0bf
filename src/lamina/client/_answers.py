"""Grounded answers over ``/v1/chat/completions`` with ``collection``: the request, the whole answer,
and a streamed one (server-sent events, OpenAI's chunk format, citations in the last content chunk).

Iterating a stream yields the answer's text as ``str`` pieces, then exactly one :class:`Answer` (the same
text, with citations and usage), then stops. ``stream.text()`` yields only the pieces and leaves the
``Answer`` in ``stream.answer``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from lamina.client._transport import Call
from lamina.client.errors import APIStreamError, connection_error, error_fields
from lamina.client.types import Answer
from lamina.engine.events import Collector, pieces_of
from lamina.sse import EventDecoder, StreamError

JSON = dict[str, Any]
CHAT_PATH = "/v1/chat/completions"


def answer_body(
    question: str,
    *,
    collection: str,
    model: str | None,
    k: int | None,
    history: Sequence[tuple[str, str]],
    max_tokens: int | None,
    temperature: float | None,
    stream: bool,
    filter: JSON | None = None,
) -> JSON:
    """The request: earlier (question, answer) turns, then the question; no model: ``rag:COLLECTION``,
    the server's choice for the collection (``serve.rag_models``, else its default model)."""
    messages: list[JSON] = []
    for asked, answered in history:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    messages.append({"role": "user", "content": question})
    body: JSON = {"model": model or f"rag:{collection}", "messages": messages, "collection": collection}
    optional = {"k": k, "max_tokens": max_tokens, "temperature": temperature, "filter": filter}
    body |= {name: value for name, value in optional.items() if value is not None}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def to_answer(
    message: JSON,
    *,
    model: str,
    collection: str,
    usage: JSON | None,
    finish_reason: str | None,
    id: str | None,
) -> Answer:
    grounding: JSON = message.get("grounding") or {}
    return Answer(
        text=message.get("content") or "",
        citations=message.get("citations") or [],
        model=model,
        usage=usage or {},
        collection=grounding.get("collection", collection),
        grounded=grounding.get("grounded", True),
        extractive=grounding.get("extractive", False),
        attributed=grounding.get("attributed", False),
        found=grounding.get("found", True),
        evidence=grounding.get("evidence"),
        finish_reason=finish_reason,
        id=id,
    )


def answer_call(body: JSON) -> Call[Answer]:
    def parse(response: httpx.Response) -> Answer:
        data = response.json()
        choice = data["choices"][0]
        return to_answer(
            choice["message"],
            model=data.get("model", body["model"]),
            collection=body["collection"],
            usage=data.get("usage"),
            finish_reason=choice.get("finish_reason"),
            id=data.get("id"),
        )

    return Call("POST", CHAT_PATH, parse, json=body)


def stream_call(body: JSON) -> Call[None]:
    return Call("POST", CHAT_PATH, lambda response: None, json=body)


class AnswerBuilder:
    """Reads the chunks of one streamed answer; ``feed`` returns new text, ``result`` the ``Answer``."""

    def __init__(self, collection: str, model: str, request_id: str | None) -> None:
        self.collection = collection
        self.model = model
        self.request_id = request_id
        self.parts: list[str] = []
        self.usage: JSON | None = None
        self.id: str | None = None
        self._decoder = EventDecoder()
        self._collected = Collector()  # the engine's one reader of streamed chunks

    @property
    def message(self) -> JSON:
        """The first choice's message so far: its text, and what else it carries (citations…)."""
        choices = self._collected.choices
        return choices[0].message if choices else {"role": "assistant", "content": None}

    @property
    def finish_reason(self) -> str | None:
        choices = self._collected.choices
        return (choices[0].finish_reason or None) if choices else None

    @property
    def done(self) -> bool:
        return self._decoder.done

    def feed(self, line: str) -> str:
        """New text from one line of the stream (empty for lines that carry none)."""
        try:
            data = self._decoder.feed(line)
        except StreamError as exc:
            if exc.event is None:
                raise APIStreamError(str(exc), status=200, request_id=self.request_id) from None
            fields = error_fields(exc.event)
            message = fields.pop("message", None) or "the stream ended with an error"
            raise APIStreamError(
                message, status=200, request_id=self.request_id, body=exc.event, **fields
            ) from None
        if data is None:
            return ""
        self.id, self.model = data.get("id", self.id), data.get("model", self.model)
        self.usage = data.get("usage") or self.usage
        text = ""
        for piece in pieces_of(data):
            self._collected.add(piece)
            text += piece.text if piece.index == 0 else ""
        self.parts.append(text)
        return text

    def result(self) -> Answer:
        if self.finish_reason is None:
            raise APIStreamError(
                "the stream ended before the answer was complete", status=200, request_id=self.request_id
            )
        message = self.message | {"content": "".join(self.parts)}
        return to_answer(
            message,
            model=self.model,
            collection=self.collection,
            usage=self.usage,
            finish_reason=self.finish_reason,
            id=self.id,
        )


class _StreamBase:
    def __init__(self, response: httpx.Response, body: JSON) -> None:
        self._response = response
        self._builder = AnswerBuilder(body["collection"], body["model"], response.headers.get("x-request-id"))
        self.answer: Answer | None = None  # set once the stream has ended

    @property
    def request_id(self) -> str | None:
        return self._builder.request_id


class AnswerStream(_StreamBase):
    """A streamed answer: iterate for ``str`` pieces then the ``Answer``; single use; closes itself."""

    def __iter__(self) -> Iterator[str | Answer]:
        builder = self._builder
        try:
            for line in self._response.iter_lines():
                if piece := builder.feed(line):
                    yield piece
                if builder.done:
                    break
        except httpx.TransportError as exc:
            raise connection_error(exc) from exc
        finally:
            self._response.close()
        self.answer = builder.result()
        yield self.answer

    def text(self) -> Iterator[str]:
        """Only the text pieces; afterwards ``self.answer`` holds the whole ``Answer``."""
        for item in self:
            if isinstance(item, str):
                yield item

    def until_done(self) -> Answer:
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class AsyncAnswerStream(_StreamBase):
    """``async for`` gives ``str`` pieces then the ``Answer``; single use; closes itself."""

    async def __aiter__(self) -> AsyncIterator[str | Answer]:
        builder = self._builder
        try:
            async for line in self._response.aiter_lines():
                if piece := builder.feed(line):
                    yield piece
                if builder.done:
                    break
        except httpx.TransportError as exc:
            raise connection_error(exc) from exc
        finally:
            await self._response.aclose()
        self.answer = builder.result()
        yield self.answer

    async def text(self) -> AsyncIterator[str]:
        """Only the text pieces; afterwards ``self.answer`` holds the whole ``Answer``."""
        async for item in self:
            if isinstance(item, str):
                yield item

    async def until_done(self) -> Answer:
        async for _ in self:
            pass
        assert self.answer is not None
        return self.answer

    async def close(self) -> None:
        await self._response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()
