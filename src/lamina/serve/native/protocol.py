"""Request bodies of Lamina's own endpoints."""

from __future__ import annotations

from typing import Literal

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


class KeyCreate(_Closed):
    name: str = Field(min_length=1, max_length=64)
    tenant: str = "default"
    admin: bool = False
    models: list[str] | None = Field(None, description="Models the key may use; all when absent.")
    limits: LimitSettings | None = Field(None, description="Budget (USD per period) and rpm/tpm limits.")
