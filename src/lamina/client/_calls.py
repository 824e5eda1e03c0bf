"""Every endpoint once: the request it makes and how its answer is read. Both clients run these."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from lamina.client._transport import Call
from lamina.client.errors import LaminaError
from lamina.client.types import (
    Collection,
    CreatedKey,
    Document,
    Health,
    Key,
    SearchHit,
    SearchMode,
    UsageRow,
)

M = TypeVar("M", bound=BaseModel)
FileInput = str | os.PathLike[str] | tuple[str, bytes | IO[bytes]]
"""A path (a folder means every file in it), or ``(name, bytes or a binary file object)``."""
UsageGroup = Literal["key", "tenant", "model"]
JSON = dict[str, Any]


def _p(segment: str) -> str:
    return quote(segment, safe="")


def _json(response: httpx.Response) -> JSON:
    data: JSON = response.json()
    return data


def _none(response: httpx.Response) -> None:
    return None


def _one(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate(response.json())


def _many(model: type[M], **extra: Any) -> Callable[[httpx.Response], list[M]]:
    return lambda response: [model.model_validate(d | extra) for d in response.json()["data"]]


def _tenant(tenant: str | None) -> dict[str, Any] | None:
    return {"tenant": tenant} if tenant else None


# health ----------------------------------------------------------------------------------------------
def health() -> Call[Health]:
    return Call("GET", "/health", _one(Health), accept=frozenset({503}))


def ready() -> Call[Health]:
    return Call("GET", "/ready", _one(Health), accept=frozenset({503}))


# collections and documents ---------------------------------------------------------------------------
def list_collections(tenant: str | None) -> Call[list[Collection]]:
    return Call("GET", "/v1/collections", _many(Collection), params=_tenant(tenant))


def create_collection(name: str, tenant: str | None) -> Call[Collection]:
    return Call("POST", "/v1/collections", _one(Collection), json={"name": name}, params=_tenant(tenant))


def delete_collection(name: str, tenant: str | None) -> Call[None]:
    return Call("DELETE", f"/v1/collections/{_p(name)}", _none, params=_tenant(tenant))


def list_documents(collection: str, tenant: str | None) -> Call[list[Document]]:
    path = f"/v1/collections/{_p(collection)}/documents"
    return Call("GET", path, _many(Document), params=_tenant(tenant))


def delete_document(collection: str, document_id: str, tenant: str | None) -> Call[None]:
    path = f"/v1/collections/{_p(collection)}/documents/{_p(document_id)}"
    return Call("DELETE", path, _none, params=_tenant(tenant))


def document_content(collection: str, document_id: str, tenant: str | None) -> Call[bytes]:
    path = f"/v1/collections/{_p(collection)}/documents/{_p(document_id)}/content"
    return Call("GET", path, lambda r: r.content, params=_tenant(tenant))


def _read(item: FileInput) -> list[tuple[str, bytes]]:
    if isinstance(item, tuple):
        name, content = item
        return [(name, content if isinstance(content, bytes) else content.read())]
    path = Path(item)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        return [(p.name, p.read_bytes()) for p in found]
    if not path.is_file():
        raise LaminaError(f"no such file: {path}")
    return [(path.name, path.read_bytes())]


def upload(
    collection: str,
    files: Iterable[FileInput],
    urls: Iterable[str],
    tenant: str | None,
    metadata: JSON | None = None,
    readers: Sequence[str] | None = None,
) -> Call[JSON]:
    parts = [("files", f) for item in files for f in _read(item)]
    links = list(urls)
    if not parts and not links:
        raise LaminaError("nothing to upload: give files and/or urls")
    path = f"/v1/collections/{_p(collection)}/documents"
    data: dict[str, Any] = {"urls": links} if links else {}
    if metadata:
        data["metadata"] = json.dumps(metadata)
    if readers:
        data["readers"] = list(readers)
    data = data or None  # type: ignore[assignment]
    return Call("POST", path, _json, files=parts or None, data=data, params=_tenant(tenant))


def search(
    query: str,
    collection: str,
    *,
    k: int,
    mode: SearchMode,
    source: str | None,
    document: str | None,
    tenant: str | None,
    filter: JSON | None = None,
) -> Call[list[SearchHit]]:
    body: JSON = {"query": query, "k": k, "mode": mode}
    narrowing = (("source", source), ("document", document), ("filter", filter))
    body |= {k: v for k, v in narrowing if v is not None}
    path = f"/v1/collections/{_p(collection)}/search"
    return Call("POST", path, _many(SearchHit, mode=mode), json=body, params=_tenant(tenant))


# jobs -----------------------------------------------------------------------------------------------
def get_job(job_id: str) -> Call[JSON]:
    return Call("GET", f"/v1/jobs/{_p(job_id)}", _json)


def list_jobs() -> Call[list[JSON]]:
    return Call("GET", "/v1/jobs", lambda r: list(r.json()["data"]))


def cancel_job(job_id: str) -> Call[JSON]:
    return Call("DELETE", f"/v1/jobs/{_p(job_id)}", _json)


def resume_job(job_id: str) -> Call[JSON]:
    return Call("POST", f"/v1/jobs/{_p(job_id)}/resume", _json)


def job_events(job_id: str) -> Call[None]:
    """Server-sent events, one job state each time the job moves, until it ends (keep-alive: 15 s)."""
    timeout = httpx.Timeout(60.0, connect=10.0)
    return Call("GET", f"/v1/jobs/{_p(job_id)}/events", _none, timeout=timeout)


# keys and usage (admins) ----------------------------------------------------------------------------
def list_keys() -> Call[list[Key]]:
    return Call("GET", "/v1/keys", _many(Key))


def create_key(
    name: str,
    *,
    tenant: str,
    admin: bool,
    models: Sequence[str] | None,
    budget_usd: float | None,
    budget_period: Literal["day", "month", "total"],
    rpm: int | None,
    tpm: int | None,
) -> Call[CreatedKey]:
    body: JSON = {"name": name, "tenant": tenant, "admin": admin}
    if models is not None:
        body["models"] = list(models)
    if budget_usd is not None or rpm is not None or tpm is not None:
        body["limits"] = {"budget_usd": budget_usd, "budget_period": budget_period, "rpm": rpm, "tpm": tpm}
    return Call("POST", "/v1/keys", _one(CreatedKey), json=body)


def revoke_key(name: str) -> Call[None]:
    return Call("DELETE", f"/v1/keys/{_p(name)}", _none)


def usage(by: UsageGroup, since: str | date | datetime | None) -> Call[list[UsageRow]]:
    when = since.isoformat() if isinstance(since, date | datetime) else since

    def parse(response: httpx.Response) -> list[UsageRow]:
        return [UsageRow.model_validate({"group": row.get(by)} | row) for row in response.json()["data"]]

    return Call("GET", "/v1/usage", parse, params={"by": by, "since": when})
