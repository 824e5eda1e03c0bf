"""Request bodies of Lamina's own endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lamina.config import LimitSettings


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectionCreate(_Closed):
    name: str = Field(min_length=1, max_length=64, description="Letters, digits, '_', '-' or '.'.")


class SearchRequest(_Closed):
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(10, ge=1, le=100)
    mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    source: str | None = Field(None, max_length=500, description="Glob over document sources.")
    document: str | None = Field(None, max_length=500, description="One document: its id or source.")
    filter: dict[str, Any] | None = Field(
        None,
        description='Metadata conditions, all of which must hold: {"team": "finance", '
        '"year": {"$gte": 2024}, "kind": {"$in": ["policy", "memo"]}} ($eq, $in, $gt, $gte, $lt, $lte; '
        "dates as ISO text).",
    )


class ReindexRequest(_Closed):
    """A new version of a collection; unset fields keep the live version's settings."""

    store: Literal["lancedb", "pgvector", "memory"] | None = None
    embedding_variant: Literal["int8", "fp32"] | None = None
    chunk_tokens: int | None = Field(None, ge=16, le=8192)
    overlap_tokens: int | None = Field(None, ge=0, le=4096)
    switch: bool = Field(False, description="Make the new version live as soon as it is built.")


class SwitchRequest(_Closed):
    version: int = Field(ge=1, description="The version to make live.")


class KeyCreate(_Closed):
    name: str = Field(min_length=1, max_length=64)
    tenant: str = "default"
    admin: bool = False
    models: list[str] | None = Field(None, description="Models the key may use; all when absent.")
    limits: LimitSettings | None = Field(None, description="Budget (USD per period) and rpm/tpm limits.")
    groups: list[str] | None = Field(
        None, description="Reader groups: the key reads documents naming one of them, and those naming none."
    )


class SourceCreate(_Closed):
    name: str = Field(min_length=1, max_length=64, description="Unique in the collection.")
    spec: dict[str, Any] = Field(
        description='What to sync: {"kind": "folder", "path": …}, or web, git, s3, webdav (docs/sources.md); '
        "credentials only as environment variable names or a secrets file."
    )
    every_s: int | None = Field(None, ge=60, description="Sync every this many seconds; unset: on demand.")
    readers: list[str] | None = Field(None, description="Groups that may read its documents.")
    metadata: dict[str, Any] | None = Field(None, description="Metadata for all its documents.")
