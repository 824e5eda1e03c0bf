"""The model seam: what a model is (``Model``: its window, tokenizer, capabilities, the servers
that serve it, how a request becomes its body), for a local llama.cpp model and a remote
OpenAI-compatible one alike; and what generates (``LLM``), which only ``lamina.engine`` implements:
every generation goes through the engine's deployments, whoever asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from lamina.config import EndpointSettings, ModelSettings
from lamina.config.models import Capability
from lamina.models.types import Generation, GenerationRequest, StreamEvent


@runtime_checkable
class Model(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def context_window(self) -> int:
        """Tokens one request may use, prompt and completion together."""
        ...

    @property
    def is_chat(self) -> bool:
        """Instruction-tuned chat model; otherwise prompts are completion-style."""
        ...

    def capabilities(self) -> list[Capability]:
        """What the model takes besides text, as configured and as its server can really render."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's own tokenizer (for packing context into the window)."""
        ...

    def endpoints(self) -> list[EndpointSettings]:
        """The OpenAI-compatible servers that serve this model (a local one is started first)."""
        ...

    def body(self, request: GenerationRequest, *, stream: bool = False) -> dict[str, Any]:
        """The OpenAI-shaped body this model gets for ``request``."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LLM(Model, Protocol):
    """A model that generates (``lamina.engine.EngineModel``): whole, or as text pieces ending with
    an event that carries the whole ``Generation``."""

    def generate(self, request: GenerationRequest) -> Generation: ...

    def stream(self, request: GenerationRequest) -> Iterator[StreamEvent]: ...


class ConfiguredModel:
    """What every backend shares: a name and the ``[models.NAME]`` settings it was declared with."""

    def __init__(self, name: str, settings: ModelSettings) -> None:
        self._name = name
        self.settings = settings

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return self.settings.context_window

    @property
    def is_chat(self) -> bool:
        return self.settings.chat

    def capabilities(self) -> list[Capability]:
        return self.settings.can

    def endpoints(self) -> list[EndpointSettings]:
        s = self.settings
        assert s.base_url is not None
        first = EndpointSettings(base_url=s.base_url, weight=s.weight, api_key_env=s.api_key_env)
        return [first, *s.endpoints]

    def body(self, request: GenerationRequest, *, stream: bool = False) -> dict[str, Any]:
        """The OpenAI-shaped body this model gets for ``request`` (public: benchmarks send the same)."""
        params = dict(request.params)
        if request.json_schema is not None:
            params.update(self.schema_fields(request.json_schema, chat=request.messages is not None))
        params["max_tokens"] = max_tokens(request, self.settings)
        return request_body(self.name, self.settings, params, stream=stream)

    def schema_fields(self, schema: dict[str, Any], *, chat: bool) -> dict[str, Any]:
        """Body fields that constrain the output to ``schema`` (servers differ on /completions)."""
        fields: dict[str, Any] = {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True},
            }
        }
        if not chat:  # /completions has no response_format in OpenAI's API;
            fields["json_schema"] = schema  # llama.cpp reads this field, others ignore it
        return fields


CHARS_PER_TOKEN = 3  # conservative for English and code in BPE vocabularies


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` where no tokenizer is at hand: the one estimate (the model's own count,
    when there is one, and the upstream's reported usage always win)."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def max_tokens(request: GenerationRequest, spec: ModelSettings) -> int:
    """The most tokens one answer may have: the request's, else the model's (the one place)."""
    return request.max_tokens or spec.max_tokens


def request_body(name: str, spec: ModelSettings, params: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The one place a request body is made: the model's configured sampling defaults under the
    request's own parameters (OpenAI's names; None = unset; ``max_tokens`` decided by ``max_tokens``)."""
    body: dict[str, Any] = {
        "temperature": spec.temperature,
        "top_p": spec.top_p,
    }
    if spec.stop:
        body["stop"] = list(spec.stop)
    if spec.backend == "llamacpp":
        body["repeat_penalty"] = spec.repeat_penalty
    body.update({k: v for k, v in params.items() if v is not None})
    if not body.get("stop"):  # some servers reject an empty list
        body.pop("stop", None)
    if spec.prompt_cache is not None:
        body["cache_prompt"] = spec.prompt_cache  # as configured (llama.cpp servers read it)
    elif spec.backend == "llamacpp" and body["temperature"] == 0:
        # A prompt found in llama.cpp's cache is evaluated in other batch shapes, which flips greedy
        # choices (ggml-org/llama.cpp#4902; still so on 2026-12-07: docs/routing.md): temperature 0
        # must give the same text every time, unless the model's prompt_cache says otherwise.
        body["cache_prompt"] = False
    body["model"] = spec.model or name
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # always: tokens are accounted
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body
