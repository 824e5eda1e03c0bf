"""Requests to and results from a language model, the same for every backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Required, TypedDict

from lamina.config.models import Capability

Role = Literal["system", "user", "assistant", "tool"]

# content part types -> the capability a model needs to take them ("text" needs none)
PART_CAPABILITY: dict[str, Capability] = {
    "image_url": "vision",
    "input_image": "vision",
    "input_audio": "audio",
}


SAMPLING_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "n",
    "logprobs",
    "top_logprobs",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
)


class Message(TypedDict, total=False):
    """A chat message as OpenAI's API has it: text or content parts, an assistant's tool calls (its
    content may then be None), a tool result's ``tool_call_id``. Fields Lamina does not know are kept
    in the dict and sent on as they came."""

    role: Required[Role]
    content: str | list[dict[str, Any]] | None
    name: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str
    refusal: str | None


def message_text(message: Message) -> str:
    """The text of a message: its string content, or its text parts joined (other parts are not text)."""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    return content or ""


@dataclass(frozen=True)
class GenerationRequest:
    """One generation, whoever asks for it (an API at the edge, the RAG answerer, a benchmark): either
    ``prompt`` (completion; a list of prompts gets a choice each) or ``messages`` (chat). Unset (None)
    sampling falls back to the model's configuration; every field has OpenAI's name and meaning."""

    prompt: str | list[str] | None = None
    messages: list[Message] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    json_schema: dict[str, Any] | None = None
    seed: int | None = None
    n: int = 1
    logprobs: bool | int | None = None  # chat: a bool; completions: how many alternatives
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    session: str | None = None  # keeps a conversation on one endpoint (x-session-id); never sent upstream

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")

    @property
    def kind(self) -> Literal["chat", "completion"]:
        return "chat" if self.messages is not None else "completion"

    @property
    def prompts(self) -> list[str]:
        """The prompts of a completion request (one, or the list given)."""
        if self.prompt is None:
            return []
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def choices(self) -> int:
        """Answers this request asks for: ``n`` for each prompt."""
        return self.n * max(1, len(self.prompts))

    @cached_property
    def text(self) -> str:
        """What the request asks in text (prompts, or every message's text), for estimates."""
        if self.messages is None:
            return "\n".join(self.prompts)
        return "\n".join(message_text(m) for m in self.messages)

    def parts(self, kind: str) -> int:
        """How many content parts of this type (``image_url``…) the messages carry."""
        return sum(
            1
            for m in self.messages or []
            if isinstance(m.get("content"), list)
            for p in m.get("content") or []
            if isinstance(p, dict) and p.get("type") == kind
        )

    @cached_property
    def needs(self) -> frozenset[Capability]:
        """What a model must take to answer this: tools, vision, audio (worked out once)."""
        needed: set[Capability] = set()
        for m in self.messages or []:
            if m.get("tool_calls") or m.get("role") == "tool":
                needed.add("tools")
            content = m.get("content")
            if isinstance(content, list):
                needed.update(PART_CAPABILITY[k] for p in content if (k := p.get("type")) in PART_CAPABILITY)
        if self.tools:
            needed.add("tools")
        return frozenset(needed)

    @cached_property
    def params(self) -> dict[str, Any]:
        """The request in OpenAI's body form (worked out once; copy it to change it): every field
        it sets (None = unset; ``n`` only above 1), the messages as they came (tool calls, content
        parts and unknown fields included)."""
        params: dict[str, Any] = {f: getattr(self, f) for f in SAMPLING_FIELDS}
        if self.n == 1:
            params["n"] = None
        if self.messages is not None:
            params["messages"] = [dict(m) for m in self.messages]
        else:
            params["prompt"] = self.prompt
        return params

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered (never their descriptions or parameters)."""
        return [str((t.get("function") or {}).get("name") or t.get("type") or "") for t in self.tools or []]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class Generation:
    text: str
    model: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    first_token_seconds: float | None = None


@dataclass
class StreamEvent:
    """A piece of streamed text; the last event has ``done`` set and carries the final ``Generation``."""

    text: str = ""
    done: bool = False
    generation: Generation | None = None
