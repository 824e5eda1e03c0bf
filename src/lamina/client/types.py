"""What the client returns: pydantic models of the server's answers.

Unknown fields are kept (``model_extra``), so a newer server never breaks an older client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Answer",
    "Citation",
    "Collection",
    "CreatedKey",
    "Document",
    "FileProgress",
    "Health",
    "JobInfo",
    "Key",
    "KeyLimits",
    "SearchHit",
    "SearchMode",
    "Usage",
    "UsageRow",
]

SearchMode = Literal["dense", "bm25", "hybrid"]
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled", "interrupted"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Health(_Model):
    """``/health`` or ``/ready``: ``status`` is ``ok``/``ready``, ``draining`` or ``unavailable``."""

    status: str
    version: str | None = None
    models: Any = None  # /ready: the models that do not answer

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "ready")


class Collection(_Model):
    name: str
    tenant: str
    documents: int = 0
    chunks: int = 0
    embedding_model: str | None = None
    dim: int | None = None
    created_at: str | None = None
    last_run: dict[str, Any] | None = None


class Document(_Model):
    id: str
    source: str  # the uploaded file's name, or the URL
    title: str | None = None
    format: str | None = None
    chunks: int = 0
    tokens: int = 0
    size_bytes: int | None = None
    coverage: float | None = None  # share of the page's visible text extraction kept (HTML pages)
    updated_at: str | None = None
    content_url: str | None = None  # the original file (PDFs open at #page=N)
    metadata: dict[str, Any] = Field(default_factory=dict)  # filterable (search and answer ``filter``)
    readers: list[str] = Field(default_factory=list)  # groups that may read it; none: the whole tenant
    origin: str | None = None  # the source (``lamina sources``) that brought it


class SearchHit(_Model):
    chunk_id: str
    doc_id: str
    source: str
    title: str | None = None
    page: int | None = None
    headings: list[str] = Field(default_factory=list)
    score: float
    text: str
    start: int = 0
    end: int = 0
    scores: dict[str, float] = Field(default_factory=dict)  # per retriever (dense, bm25) for hybrid
    mode: SearchMode = "hybrid"  # the mode the search ran in
    metadata: dict[str, Any] = Field(default_factory=dict)  # the document's


class FileProgress(_Model):
    """One file or URL of an ingest job.

    ``state``: ``queued``, ``extracting``, ``embedding``, ``done``, ``failed`` or ``skipped`` (then
    ``detail`` says why), or ``cancelled``/``interrupted`` when the job stopped before it.
    """

    name: str
    state: str
    detail: str = ""

    @property
    def reason(self) -> str | None:
        """Why the file failed or was skipped (``None`` otherwise)."""
        return (self.detail or None) if self.state in ("failed", "skipped") else None


class JobInfo(_Model):
    """An ingest job: ``state`` is ``queued``, ``running``, ``completed``, ``failed``, ``cancelled``
    or ``interrupted``; ``files`` has each file's progress, ``counts`` the files per state."""

    id: str
    collection: str
    state: str
    resumable: bool = False
    files: list[FileProgress] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    report: dict[str, Any] | None = None  # ingestion statistics, once completed
    error: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def failed_files(self) -> list[FileProgress]:
        return [f for f in self.files if f.state in ("failed", "skipped")]


class Citation(_Model):
    """Source ``n`` of an answer, cited in its text as ``[n]``."""

    n: int
    source: str
    title: str | None = None
    page: int | None = None
    headings: list[str] = Field(default_factory=list)
    chunk_id: str
    snippet: str = ""
    score: float = 0.0
    document_id: str | None = None
    url: str | None = None  # the original file at the cited page


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Answer(_Model):
    """A grounded answer: ``text`` cites its sources as ``[n]``, each one in ``citations``.

    ``grounded`` is False when nothing relevant was found (the text says so); ``extractive`` is True
    when the model gave nothing usable and the text is quoted from the sources instead; ``found``
    is False when the sources were searched and do not answer (the text says so and lists the
    closest passages, cited), ``evidence`` how much of the question a chosen answer says (0-1).
    """

    text: str
    citations: list[Citation] = Field(default_factory=list)
    model: str
    usage: Usage = Field(default_factory=Usage)
    collection: str | None = None
    grounded: bool = True
    extractive: bool = False
    attributed: bool = False
    found: bool = True
    evidence: float | None = None
    finish_reason: str | None = None
    id: str | None = None

    def __str__(self) -> str:
        return self.text


class KeyLimits(_Model):
    budget_usd: float | None = None
    budget_period: Literal["day", "month", "total"] = "month"
    rpm: int | None = None
    tpm: int | None = None


class Key(_Model):
    """An API key's record (never the key itself)."""

    name: str
    prefix: str
    tenant: str
    admin: bool = False
    models: list[str] | None = None
    created_at: str | None = None
    revoked_at: str | None = None
    limits: KeyLimits | None = None


class CreatedKey(Key):
    """A new key: ``key`` is the secret, returned this once (the server keeps only its hash)."""

    key: str


class UsageRow(_Model):
    """Requests, tokens and spend of one key, tenant or model (``group``)."""

    group: str | None = None
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_tokens: int = 0
    spend_usd: float = 0.0
    cache_hits: int = 0
    errors: int = 0
