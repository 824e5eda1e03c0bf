"""OpenAI's Responses API, translated onto the engine's one request and back.

A request's ``input`` (text, or items: messages with ``input_text``/``input_image``/``input_file``/
``output_text`` parts, ``function_call`` and ``function_call_output``) becomes chat messages;
``instructions`` the system message; function tools, ``tool_choice``, ``text.format`` (a JSON schema)
and ``max_output_tokens`` what chat completions call them. What Lamina cannot honour is refused with a
400 naming it (other built-in tools, ``reasoning`` effort, stored prompts, ``conversation``,
``background``, files by id), never dropped. A ``file_search_call`` item sent back as history is
accepted and adds nothing: its results already shaped the assistant message after it. Answers come
back as output items: a ``message`` with its ``output_text``, then a ``function_call`` per tool call.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lamina.engine.events import Choice
from lamina.models.types import GenerationRequest, Message, Usage


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextConfig(_Open):
    format: dict[str, Any] | None = None

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        kind = (value or {}).get("type", "text")
        if kind not in ("text", "json_schema", "json_object"):
            raise ValueError(f"unknown text.format type {kind!r}; one of text, json_schema, json_object")
        if kind == "json_schema" and not (value or {}).get("schema"):
            raise ValueError("a json_schema format needs its 'schema'")
        return value

    def response_format(self) -> dict[str, Any] | None:
        """As chat completions' ``response_format``."""
        fmt = self.format or {}
        kind = fmt.get("type", "text")
        if kind == "json_object":
            return {"type": "json_object"}
        if kind == "json_schema":
            schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
            return {"type": "json_schema", "json_schema": {"name": "response", **schema}}
        return None


FUNCTION = "function"
FILE_SEARCH = "file_search"


class ResponsesRequest(_Open):
    model: str = Field(min_length=1, max_length=200)
    input: str | list[dict[str, Any]] = Field(description="Text, or input items.")
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False
    store: bool = Field(True, description="Keep the response for GET and previous_response_id.")
    previous_response_id: str | None = Field(None, max_length=100)
    metadata: dict[str, str] | None = Field(None, max_length=16)
    user: str | None = Field(None, max_length=256)
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: dict[str, Any] | None = None
    conversation: Any = None
    prompt: Any = None
    background: bool | None = None
    top_logprobs: int | None = None

    @model_validator(mode="after")
    def _what_lamina_honours(self) -> ResponsesRequest:
        refused = {
            "conversation": "conversations are not kept; continue one with previous_response_id",
            "prompt": "stored prompts are not supported; send instructions and input",
            "background": "background responses are not supported",
            "top_logprobs": "logprobs are not available on the Responses API here; use chat completions",
        }
        for name, why in refused.items():
            if getattr(self, name):
                raise ValueError(f"{name}: {why}")
        if self.reasoning and self.reasoning.get("effort") not in (None, "none", "minimal"):
            raise ValueError("reasoning effort is not supported by Lamina's models; leave reasoning out")
        for tool in self.tools or []:
            kind = tool.get("type")
            if kind == FUNCTION and not tool.get("name"):
                raise ValueError("a function tool needs 'name'")
            if kind == FILE_SEARCH and not tool.get("vector_store_ids"):
                raise ValueError("a file_search tool needs vector_store_ids (collection names)")
            if kind not in (FUNCTION, FILE_SEARCH):
                raise ValueError(f"tool type {kind!r} is not supported; use function or file_search tools")
        if isinstance(self.input, str) and not self.input:
            raise ValueError("input must not be empty")
        return self

    @property
    def functions(self) -> list[dict[str, Any]]:
        return [t for t in self.tools or [] if t.get("type") == FUNCTION]

    @property
    def file_search(self) -> dict[str, Any] | None:
        found = [t for t in self.tools or [] if t.get("type") == FILE_SEARCH]
        return found[0] if found else None

    def history(self, earlier: list[Message]) -> list[Message]:
        """The conversation so far: what came before (a previous response's), then this input."""
        return [*earlier, *input_messages(self.input)]

    def messages(self, history: list[Message]) -> list[Message]:
        """What the model reads: the instructions (never carried over to a later response), then
        the conversation."""
        system: list[Message] = (
            [{"role": "system", "content": self.instructions}] if self.instructions else []
        )
        return [*system, *history]

    def generation_request(self, messages: list[Message]) -> GenerationRequest:
        choice = self.tool_choice
        return GenerationRequest(
            messages=messages,
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            tools=[_function(t) for t in self.functions] or None,
            tool_choice=_tool_choice(choice) if choice is not None and self.functions else None,
            parallel_tool_calls=self.parallel_tool_calls if self.functions else None,
            response_format=self.text.response_format() if self.text else None,
            user=self.user,
        )


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    function = {
        k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None
    }
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == FUNCTION and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("type") == FILE_SEARCH:
        return "auto"  # the search itself is Lamina's (see serving), the model only answers
    raise ItemError(
        f"tool_choice {choice!r} is not supported; use none, auto, required or a function", "tool_choice"
    )


class ItemError(ValueError):
    """Input Lamina cannot translate; the route answers 400 with ``param``."""

    def __init__(self, message: str, param: str = "input") -> None:
        super().__init__(message)
        self.param = param


TEXT_PARTS = ("input_text", "output_text", "text")


def _parts(content: str | list[dict[str, Any]], where: str) -> str | list[dict[str, Any]]:
    """A message's content parts as chat content parts (text alone stays a string)."""
    if isinstance(content, str):
        return content
    out: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type")
        if kind in TEXT_PARTS:
            out.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "refusal":
            out.append({"type": "refusal", "refusal": str(part.get("refusal", ""))})
        elif kind == "input_image" and part.get("image_url"):
            image = {"url": part["image_url"], **({"detail": part["detail"]} if part.get("detail") else {})}
            out.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and part.get("file_data"):
            file = {k: part[k] for k in ("file_data", "filename") if part.get(k)}
            out.append({"type": "file", "file": file})
        elif kind in ("input_image", "input_file"):
            raise ItemError(f"{where}.content[{i}]: files by id are not supported; send the data inline")
        else:
            raise ItemError(f"{where}.content[{i}]: unknown content type {kind!r}")
    if all(p["type"] == "text" for p in out):
        return "".join(p["text"] for p in out)
    return out


def input_messages(items: str | list[dict[str, Any]]) -> list[Message]:
    """Input items as chat messages: consecutive function calls become one assistant message's
    ``tool_calls``; a call's output a tool message."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[Message] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise ItemError(f"{where}: role must be user, assistant, system or developer")
            content = _parts(item.get("content") or "", where)
            if role == "assistant" and not isinstance(content, str):
                content = "".join(str(p.get("text", p.get("refusal", ""))) for p in content)
            out.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            if not (item.get("call_id") and item.get("name")):
                raise ItemError(f"{where}: a function_call needs call_id and name")
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant" and isinstance(last["content"], str):
                last["tool_calls"] = [call]
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not item.get("call_id"):
                raise ItemError(f"{where}: a function_call_output needs call_id")
            output = item.get("output")
            text = output if isinstance(output, str) else _parts(output or "", where)
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        elif kind == "file_search_call":
            continue  # its results shaped the assistant message after it (see the module docstring)
        else:
            raise ItemError(f"{where}: input item type {kind!r} is not supported")
    if not out:
        raise ItemError("input has no message")
    return out


# responses -----------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def message_item(
    text: str, annotations: list[dict[str, Any]] | None = None, *, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": new_id("msg"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text, annotations)],
    }


def output_text(text: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}


def call_item(call: dict[str, Any], *, status: str = "completed") -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "id": new_id("fc"),
        "type": "function_call",
        "status": status,
        "call_id": call.get("id") or new_id("call"),
        "name": function.get("name") or "",
        "arguments": function.get("arguments") or "",
    }


def output_items(choice: Choice) -> list[dict[str, Any]]:
    """A choice as output items: its text as a message, then a function_call per tool call."""
    items = [message_item(choice.text)] if choice.text or not choice.message.get("tool_calls") else []
    return items + [call_item(c) for c in choice.message.get("tool_calls") or []]


def usage_of(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_object(
    body: ResponsesRequest,
    response_id: str,
    model: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    *,
    status: str = "completed",
    finish_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The response object, with the request's settings echoed as OpenAI's does."""
    reason = INCOMPLETE.get(finish_reason or "")
    if reason is not None and status == "completed":
        status = "incomplete"
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": error,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": body.store,
        "temperature": body.temperature if body.temperature is not None else 1.0,
        "text": {"format": (body.text.format if body.text and body.text.format else {"type": "text"})},
        "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
        "tools": body.tools or [],
        "top_p": body.top_p if body.top_p is not None else 1.0,
        "truncation": body.truncation or "disabled",
        "usage": usage_of(usage) if usage is not None else None,
        "user": body.user,
        "metadata": body.metadata or {},
    }


def conversation_of(history: list[Message], output: list[dict[str, Any]]) -> list[Message]:
    """What a later ``previous_response_id`` continues: the conversation and this response's output
    as the assistant's turn."""
    text = "".join(
        p["text"] for item in output if item["type"] == "message" for p in item["content"] if "text" in p
    )
    calls = [
        {"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
        for i in output
        if i["type"] == "function_call"
    ]
    turn: Message = {"role": "assistant", "content": text or None}
    if calls:
        turn["tool_calls"] = calls
    return [*history, turn]


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class ResponseObject(_Open):
    """A response, as OpenAI's API reference has it (every field is listed in /docs by example)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "incomplete", "in_progress", "failed"]
    model: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None = None
