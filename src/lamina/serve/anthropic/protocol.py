"""Anthropic's Messages API, translated onto the engine's one request and back.

Request bodies are validated here and made into a ``GenerationRequest`` (``generation_request``):
``system`` (a string or text blocks) becomes the system message; text and image blocks become
content parts; an assistant's ``tool_use`` blocks become its ``tool_calls`` (the input as JSON
text); a user's ``tool_result`` blocks become tool messages, before the text that follows them;
``tools`` and ``tool_choice`` become function tools. What the engine cannot honour is refused with a
400 naming the field (``top_k``, extended ``thinking``), never dropped. Answers come back as content
blocks (``text``, ``tool_use`` with its parsed ``input``) with Anthropic's stop reasons.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lamina.engine.events import Choice
from lamina.models.types import GenerationRequest, Message

# OpenAI finish reasons -> Anthropic stop reasons
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


# the field each content block must carry
BLOCK_FIELDS = {"text": "text", "image": "source", "tool_use": "id", "tool_result": "tool_use_id"}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ImageSource(_Open):
    type: Literal["base64", "url"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _has_image(self) -> ImageSource:
        if self.type == "base64" and not (self.data and self.media_type):
            raise ValueError("a base64 image needs media_type and data")
        if self.type == "url" and not self.url:
            raise ValueError("a url image needs url")
        return self

    def as_url(self) -> str:
        return self.url if self.type == "url" and self.url else f"data:{self.media_type};base64,{self.data}"


class Block(_Open):
    """A content block: ``text``, ``image``, ``tool_use`` (assistant) or ``tool_result`` (user)."""

    type: Literal["text", "image", "tool_use", "tool_result"]
    text: str | None = None
    source: ImageSource | None = None
    id: str | None = Field(None, max_length=256)
    name: str | None = Field(None, max_length=256)
    input: dict[str, Any] | None = None
    tool_use_id: str | None = Field(None, max_length=256)
    content: str | list[Block] | None = None
    is_error: bool | None = None

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> Block:
        needed = BLOCK_FIELDS[self.type]
        if getattr(self, needed) is None:
            raise ValueError(f"a {self.type} block needs {needed!r}")
        if self.type == "tool_use" and not self.name:
            raise ValueError("a tool_use block needs 'name'")
        return self

    def result_text(self) -> str:
        """A tool result's content as text (text blocks joined)."""
        if isinstance(self.content, list):
            return "".join(b.text or "" for b in self.content if b.type == "text")
        return self.content or ""


class InputMessage(_Open):
    role: Literal["user", "assistant"]
    content: str | list[Block] = Field(min_length=1)


class Tool(_Open):
    name: str = Field(min_length=1, max_length=256)
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(_Open):
    model: str = Field(min_length=1, max_length=200)
    max_tokens: int = Field(ge=1, le=1_000_000, description="Required, as Anthropic requires it.")
    messages: list[InputMessage] = Field(min_length=1, max_length=1000)
    system: str | list[Block] | None = None
    stop_sequences: list[str] | None = Field(None, max_length=8)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: ToolChoice | None = None
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None

    @field_validator("top_k")
    @classmethod
    def _no_top_k(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError("top_k is not supported: Lamina's models take temperature and top_p")
        return value

    @field_validator("thinking")
    @classmethod
    def _no_thinking(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type") != "disabled":
            raise ValueError("extended thinking is not supported; leave thinking out")
        return value

    def generation_request(self) -> GenerationRequest:
        messages: list[Message] = []
        if self.system:
            system = (
                self.system if isinstance(self.system, str) else "".join(b.text or "" for b in self.system)
            )
            messages.append({"role": "system", "content": system})
        for m in self.messages:
            messages += _translated(m)
        choice = self.tool_choice
        user = (self.metadata or {}).get("user_id")
        return GenerationRequest(
            messages=messages,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop_sequences or None,
            tools=[_function(t) for t in self.tools] if self.tools else None,
            tool_choice=_tool_choice(choice) if choice is not None else None,
            parallel_tool_calls=False if choice is not None and choice.disable_parallel_tool_use else None,
            user=str(user) if user is not None else None,
        )


class CountTokensRequest(_Open):
    model: str = Field(min_length=1, max_length=200)
    messages: list[InputMessage] = Field(min_length=1, max_length=1000)
    system: str | list[Block] | None = None
    tools: list[Tool] | None = Field(None, max_length=128)

    def generation_request(self) -> GenerationRequest:
        return MessagesRequest(
            model=self.model, max_tokens=1, messages=self.messages, system=self.system, tools=self.tools
        ).generation_request()


def _translated(m: InputMessage) -> list[Message]:
    """One Anthropic message as chat messages: tool results first (a tool message each), then the
    text and images; an assistant's tool_use blocks as its tool_calls."""
    if isinstance(m.content, str):
        return [{"role": m.role, "content": m.content}]
    out: list[Message] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in m.content:
        if block.type == "text":
            parts.append({"type": "text", "text": block.text})
        elif block.type == "image" and block.source is not None:
            parts.append({"type": "image_url", "image_url": {"url": block.source.as_url()}})
        elif block.type == "tool_use":
            arguments = json.dumps(block.input or {})
            calls.append(
                {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}}
            )
        elif block.type == "tool_result":
            text = block.result_text()
            out.append({"role": "tool", "tool_call_id": str(block.tool_use_id), "content": text})
    if m.role == "assistant":
        text = "".join(str(p.get("text", "")) for p in parts)
        message: Message = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        return [*out, message]
    if parts:
        plain = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if plain else parts})
    return out


def _function(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


# responses -----------------------------------------------------------------------------------


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class MessageResponse(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: Usage


class TokenCount(BaseModel):
    input_tokens: int


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    """Every error on these routes, in Anthropic's shape."""

    type: Literal["error"] = "error"
    error: ErrorDetail


def message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def content_blocks(choice: Choice) -> list[dict[str, Any]]:
    """A choice as Anthropic content blocks: its text, then a tool_use block per tool call."""
    blocks: list[dict[str, Any]] = []
    if choice.text:
        blocks.append({"type": "text", "text": choice.text})
    for call in choice.message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": tool_input(function),
            }
        )
    return blocks


def tool_input(function: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments as the object Anthropic's clients expect (text that is no object is kept
    under ``arguments``, never dropped)."""
    arguments = function.get("arguments") or "{}"
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def stop_reason(finish_reason: str) -> str:
    return STOP_REASONS.get(finish_reason, "end_turn")
