"""Request bodies of the OpenAI-compatible endpoints, validated once at the edge.

Each becomes the engine's ``GenerationRequest`` (``generation_request``): the whole message model
goes on as the client sent it (content parts, an assistant's ``tool_calls``, a tool result's
``tool_call_id``, fields Lamina does not know), as do the tools, ``n``, logprobs and
``response_format``. Unknown top-level fields are accepted and ignored (as vLLM does). Lamina's own
extensions (``collection``, ``k``) come in through ``extra_body`` with the official clients.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lamina.models.types import GenerationRequest, Message

# content part types and the field each must carry (as OpenAI's chat API has them)
PART_FIELDS = {
    "text": "text",
    "image_url": "image_url",
    "input_audio": "input_audio",
    "file": "file",
    "refusal": "refusal",
}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(BaseModel):
    include_usage: bool = False


class FunctionCall(_Open):
    name: str = Field(min_length=1, max_length=256)
    arguments: str = Field(description="JSON text, as the model wrote it.")


class ToolCall(_Open):
    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Open):
    """One message, whole: text or content parts; an assistant's ``tool_calls`` (its content may be
    null); a tool result's ``tool_call_id``. Fields not listed here are kept and sent on."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, max_length=256)
    tool_calls: list[ToolCall] | None = Field(None, max_length=128)
    tool_call_id: str | None = Field(None, max_length=256)
    refusal: str | None = None

    @field_validator("content")
    @classmethod
    def _known_parts(cls, value: Any) -> Any:
        if isinstance(value, list):
            for part in value:
                kind = part.get("type")
                if kind not in PART_FIELDS:
                    raise ValueError(f"unknown content part type {kind!r}; one of {', '.join(PART_FIELDS)}")
                if part.get(PART_FIELDS[kind]) is None:
                    raise ValueError(f"a {kind} part needs its {PART_FIELDS[kind]!r} field")
        return value

    @model_validator(mode="after")
    def _role_fields(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content")
        return self

    def as_message(self) -> Message:
        """The message for the model, exactly as sent (``developer`` becomes ``system``, which every
        server takes)."""
        message = self.model_dump(exclude_unset=True)
        if self.role == "developer":
            message["role"] = "system"
        if "content" not in message:  # an assistant turn of tool calls only: content null, as OpenAI's
            message["content"] = None
        return cast(Message, message)


class _Sampling(_Open):
    model: str = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=128, description="Answers to make; budgets reserve for all of them.")
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = Field(None, max_length=256)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> _Sampling:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 8:
            raise ValueError("at most 8 stop sequences")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    def _common(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": [self.stop] if isinstance(self.stop, str) else self.stop,
            "seed": self.seed,
            "n": self.n,
            "user": self.user,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "logit_bias": self.logit_bias,
        }


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    collection: str | None = Field(
        None, description="Lamina: answer from this collection, citing its documents.", max_length=64
    )
    k: int | None = Field(None, ge=1, le=100, description="Lamina: chunks to retrieve.")
    filter: dict[str, Any] | None = Field(
        None,
        description="Lamina: answer only from documents whose metadata matches, "
        'e.g. {"year": {"$gte": 2024}}.',
    )

    @field_validator("tools")
    @classmethod
    def _named_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for tool in value or []:
            if tool.get("type") == "function" and not (tool.get("function") or {}).get("name"):
                raise ValueError("a function tool needs function.name")
        return value

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def generation_request(self) -> GenerationRequest:
        return GenerationRequest(
            messages=[m.as_message() for m in self.messages],
            **(self._common() | {"max_tokens": self.max_tokens or self.max_completion_tokens}),
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs,
            tools=self.tools,
            tool_choice=self.tool_choice,
            parallel_tool_calls=self.parallel_tool_calls,
            response_format=self.response_format,
        )


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(description="A prompt, or a list of prompts (a choice each).")
    logprobs: int | None = Field(None, ge=0, le=5, description="Alternatives per token, with logprobs.")

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= 64:
            raise ValueError("give between 1 and 64 prompts")
        return value

    def generation_request(self) -> GenerationRequest:
        return GenerationRequest(prompt=self.prompt, logprobs=self.logprobs, **self._common())


class EmbeddingRequest(_Open):
    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(description="A text, or a list of up to 2048 texts.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _texts(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or len(texts) > 2048:
            raise ValueError("give between 1 and 2048 texts")
        if any(not t for t in texts):
            raise ValueError("texts must not be empty")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


# responses -----------------------------------------------------------------------------------
# What the endpoints answer, as in OpenAI's API reference (and vLLM's protocol.py): every response is
# built from these models, so /docs shows the schemas and a field can't be misspelt in one handler.
# Lamina's own additions are marked; grounded messages carry them (citations, annotations, grounding).


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class AssistantMessage(_Open):
    """The answer; a grounded one also has ``citations``, ``annotations`` and ``grounding`` (Lamina)."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None


class Completion(BaseModel):
    """A text completion; the chunks of a streamed one have this shape too (without usage)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: dict[str, Any]
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageInfo | None = None


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error, in OpenAI's shape."""

    error: ErrorInfo


class ModelCard(_Open):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "lamina"
    kind: Literal["chat", "completion", "embedding", "rag"] = Field(
        description="Lamina: what the model does."
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian float32.")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
