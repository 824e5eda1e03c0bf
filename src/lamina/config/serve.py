"""The deployment layer's sections: ``[serve]`` and the budgets and rate limits of keys and tenants."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lamina.config.base import Section


class LimitSettings(Section):
    """A budget and rate limits, for a key (``lamina keys create --budget-usd …``) or a tenant."""

    budget_usd: float | None = Field(None, ge=0, description="Spend allowed per period (USD).")
    budget_period: Literal["day", "month", "total"] = "month"
    rpm: int | None = Field(None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, description="Tokens (prompt + completion) per minute.")

    @property
    def empty(self) -> bool:
        return self.budget_usd is None and self.rpm is None and self.tpm is None


class ServeSettings(Section):
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
    responses_retention_days: float = Field(
        30,
        gt=0,
        description="Responses API: how long a stored response (store=true) is kept for GET and "
        "previous_response_id; then it is gone (404).",
    )
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
    source_poll_s: float = Field(
        15.0, gt=0, description="How often an idle worker looks for sources due to sync (lamina sources)."
    )
    source_lease_s: float = Field(
        60.0, ge=1, description="A sync's lease: a worker silent this long loses the source to another."
    )
