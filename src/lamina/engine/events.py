"""What a generation yields, whatever the API that asked for it: pieces of a stream (a choice's
text, tool-call pieces, logprobs, its finish; usage in a piece of its own), the whole result, and
the one reader that folds pieces back into the result. Every endpoint, the library and the UI read
generations as these; nothing else interprets an upstream's chunks (``deployment.py`` makes them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lamina.models.types import Usage


@dataclass
class Piece:
    """One streamed step of one choice (``index``): the delta to pass on (``content``, ``tool_calls``
    pieces as they come…), its logprobs, a finish reason; usage arrives in a piece of its own."""

    delta: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    index: int = 0
    logprobs: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        content = self.delta.get("content")
        return content if isinstance(content, str) else ""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        calls = self.delta.get("tool_calls")
        return calls if isinstance(calls, list) else []


@dataclass
class Choice:
    """One answer of a whole generation, as a chat message whatever the upstream endpoint was."""

    message: dict[str, Any]
    finish_reason: str
    index: int = 0
    logprobs: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        content = self.message.get("content")
        return content if isinstance(content, str) else ""

    @property
    def tool_names(self) -> list[str]:
        return [str((c.get("function") or {}).get("name", "")) for c in self.message.get("tool_calls") or []]


@dataclass
class Result:
    """A whole (non-streamed) generation: its choices (``n`` per prompt) and the usage of all."""

    choices: list[Choice]
    usage: Usage

    @property
    def first(self) -> Choice:
        return self.choices[0]


class Collector:
    """Folds a stream's pieces into the whole result, as a non-streamed answer would have been:
    content joined, tool-call pieces merged by their index (arguments concatenated), logprobs
    appended. The one reader of streamed pieces, for the cache, the log and the RAG answerer."""

    def __init__(self) -> None:
        self._choices: dict[int, Choice] = {}
        self.usage = Usage()

    def add(self, piece: Piece) -> None:
        if piece.usage is not None:
            self.usage = piece.usage
        if not (piece.delta or piece.logprobs or piece.finish_reason):
            return
        choice = self._choices.setdefault(
            piece.index, Choice({"role": "assistant", "content": None}, "", piece.index)
        )
        message = choice.message
        for key, value in piece.delta.items():
            if key == "tool_calls":
                _merge_calls(message.setdefault("tool_calls", []), value)
            elif isinstance(value, str):
                message[key] = (message.get(key) or "") + value
            else:
                message[key] = value
        if piece.logprobs:
            choice.logprobs = _merge_logprobs(choice.logprobs, piece.logprobs)
        if piece.finish_reason:
            choice.finish_reason = piece.finish_reason

    @property
    def choices(self) -> list[Choice]:
        """The choices so far, as they stand (a choice not finished yet has finish_reason "")."""
        return [self._choices[i] for i in sorted(self._choices)]

    def result(self) -> Result:
        """The whole result (a choice the stream never finished says "stop", as servers do)."""
        return Result([replace(c, finish_reason=c.finish_reason or "stop") for c in self.choices], self.usage)


def _merge_calls(calls: list[dict[str, Any]], pieces: list[dict[str, Any]]) -> None:
    """Tool-call deltas into whole calls: the first piece of a call names it, later ones add to
    its arguments (OpenAI's streaming format, which vLLM and llama.cpp follow)."""
    for piece in pieces:
        index = piece.get("index", len(calls))
        while len(calls) <= index:
            calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call = calls[index]
        for key, value in piece.items():
            if key == "function":
                function = call["function"]
                for name, part in (value or {}).items():
                    function[name] = (function.get(name) or "") + part if isinstance(part, str) else part
            elif key != "index" and value is not None:
                call[key] = value


def _merge_logprobs(whole: dict[str, Any] | None, piece: dict[str, Any]) -> dict[str, Any]:
    """Logprobs of a piece appended to those so far (every list field grows; chat's ``content``
    and ``refusal``, or completions' ``tokens``, ``token_logprobs``…)."""
    merged = dict(whole or {})
    for key, value in piece.items():
        if isinstance(value, list):
            merged[key] = [*(merged.get(key) or []), *value]
        elif key not in merged or merged[key] is None:
            merged[key] = value
    return merged


def choice_of(data: dict[str, Any], position: int, transcript: bool) -> Choice:
    """A choice of a (chat or text) completion response as a chat message."""
    if "message" in data:
        message = dict(data["message"] or {})
    else:
        message = {"role": "assistant", "content": data.get("text") or ""}
    message.setdefault("role", "assistant")
    if transcript and isinstance(message.get("content"), str):
        message["content"] = message["content"].lstrip()
    index = data.get("index")
    return Choice(
        message,
        data.get("finish_reason") or "stop",
        index if isinstance(index, int) else position,
        data.get("logprobs") or None,
    )


def pieces_of(chunk: dict[str, Any]) -> list[Piece]:
    """An OpenAI stream chunk (chat or text completion) as pieces, one per choice it carries (usage
    comes as a piece of its own); none for an empty chunk."""
    pieces = []
    for position, choice in enumerate(chunk.get("choices") or []):
        if "delta" in choice:
            delta = {k: v for k, v in (choice.get("delta") or {}).items() if k != "role" and v is not None}
        else:
            delta = {"content": choice["text"]} if choice.get("text") else {}
        index = choice.get("index")
        logprobs = choice.get("logprobs") or None
        if delta or logprobs or choice.get("finish_reason"):
            pieces.append(
                Piece(
                    delta,
                    choice.get("finish_reason"),
                    None,
                    index if isinstance(index, int) else position,
                    logprobs,
                )
            )
    if chunk.get("usage"):
        pieces.append(Piece(usage=usage_of(chunk["usage"])))
    return pieces


def usage_of(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0))
