"""``AsyncLamina``: the asyncio client, method for method the same as ``Lamina`` (awaited). Each method
runs one ``Call`` from ``_calls``; nothing here builds a request or reads an answer itself."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, overload

import httpx

from lamina.client import _calls as calls
from lamina.client._answers import AsyncAnswerStream, answer_body, answer_call, stream_call
from lamina.client._jobs import AsyncJob
from lamina.client._transport import DEFAULT_TIMEOUT, AsyncTransport, Timeout, openai_module
from lamina.client.types import (
    Answer,
    Collection,
    CreatedKey,
    Document,
    Health,
    Key,
    SearchHit,
    SearchMode,
    UsageRow,
)

if TYPE_CHECKING:
    import openai


class _Resource:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport


class AsyncCollections(_Resource):
    async def list(self, *, tenant: str | None = None) -> builtins.list[Collection]:
        """The key's tenant's collections (an admin key without ``tenant``: every tenant's)."""
        return await self._t.call(calls.list_collections(tenant))

    async def create(self, name: str, *, tenant: str | None = None) -> Collection:
        return await self._t.call(calls.create_collection(name, tenant))

    async def delete(self, name: str, *, tenant: str | None = None) -> None:
        """Delete the collection with its vectors and uploaded files."""
        await self._t.call(calls.delete_collection(name, tenant))


class AsyncDocuments(_Resource):
    async def upload(
        self,
        collection: str,
        files: Iterable[calls.FileInput] = (),
        *,
        urls: Iterable[str] = (),
        tenant: str | None = None,
        metadata: dict[str, Any] | None = None,
        readers: Sequence[str] | None = None,
    ) -> AsyncJob:
        """Send files (paths, folders or ``(name, bytes)``) and/or URLs: an ingest job, to ``wait()`` on.
        ``metadata`` is given to each document (filterable), ``readers`` the groups that may read them."""
        return AsyncJob.of(
            await self._t.call(calls.upload(collection, files, urls, tenant, metadata, readers)), self._t
        )

    async def list(self, collection: str, *, tenant: str | None = None) -> builtins.list[Document]:
        return await self._t.call(calls.list_documents(collection, tenant))

    async def delete(self, collection: str, document_id: str, *, tenant: str | None = None) -> None:
        await self._t.call(calls.delete_document(collection, document_id, tenant))

    async def content(self, collection: str, document_id: str, *, tenant: str | None = None) -> bytes:
        """The original file's bytes."""
        return await self._t.call(calls.document_content(collection, document_id, tenant))


class AsyncJobs(_Resource):
    async def get(self, job_id: str) -> AsyncJob:
        return AsyncJob.of(await self._t.call(calls.get_job(job_id)), self._t)

    async def list(self) -> builtins.list[AsyncJob]:
        """Recent ingest jobs of the key's tenant (admins: every tenant's), newest first."""
        return [AsyncJob.of(data, self._t) for data in await self._t.call(calls.list_jobs())]

    async def cancel(self, job_id: str) -> AsyncJob:
        return AsyncJob.of(await self._t.call(calls.cancel_job(job_id)), self._t)

    async def resume(self, job_id: str) -> AsyncJob:
        return AsyncJob.of(await self._t.call(calls.resume_job(job_id)), self._t)

    async def wait(
        self,
        job_id: str,
        progress: Callable[[AsyncJob], object] | None = None,
        *,
        timeout: float | None = None,
    ) -> AsyncJob:
        job = await self.get(job_id)
        return await job.wait(progress, timeout=timeout)


class AsyncKeys(_Resource):
    """API keys (admin keys only)."""

    async def create(
        self,
        name: str,
        *,
        tenant: str = "default",
        admin: bool = False,
        models: Sequence[str] | None = None,
        budget_usd: float | None = None,
        budget_period: Literal["day", "month", "total"] = "month",
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> CreatedKey:
        """A new key; ``.key`` is the secret, returned only now. Limits: spend per period, rpm, tpm."""
        return await self._t.call(
            calls.create_key(
                name,
                tenant=tenant,
                admin=admin,
                models=models,
                budget_usd=budget_usd,
                budget_period=budget_period,
                rpm=rpm,
                tpm=tpm,
            )
        )

    async def list(self) -> builtins.list[Key]:
        return await self._t.call(calls.list_keys())

    async def revoke(self, name: str) -> None:
        await self._t.call(calls.revoke_key(name))


class AsyncLamina:
    """``Lamina`` for asyncio: the same arguments, resources and methods, awaited; ``async with``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._t = AsyncTransport(
            base_url, api_key, timeout=timeout, max_retries=max_retries, http_client=http_client
        )
        self.collections = AsyncCollections(self._t)
        self.documents = AsyncDocuments(self._t)
        self.jobs = AsyncJobs(self._t)
        self.keys = AsyncKeys(self._t)

    @property
    def base_url(self) -> str:
        return self._t.root

    async def health(self) -> Health:
        """``ok`` once the server is up (``draining`` while it shuts down); never raises on 503."""
        return await self._t.call(calls.health())

    async def ready(self) -> Health:
        """``ready`` once the default model answers; ``unavailable`` (with ``models``) or ``draining``."""
        return await self._t.call(calls.ready())

    async def search(
        self,
        query: str,
        *,
        collection: str,
        k: int = 10,
        mode: SearchMode = "hybrid",
        source: str | None = None,
        document: str | None = None,
        tenant: str | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[SearchHit]:
        """Hybrid (or dense, or BM25) search; ``source``: a glob over sources, ``document``: one id,
        ``filter``: metadata conditions (``{"year": {"$gte": 2024}}``)."""
        call = calls.search(
            query, collection, k=k, mode=mode, source=source, document=document, tenant=tenant, filter=filter
        )
        return await self._t.call(call)

    @overload
    async def answer(
        self,
        question: str,
        *,
        collection: str,
        model: str | None = ...,
        k: int | None = ...,
        history: Sequence[tuple[str, str]] = ...,
        max_tokens: int | None = ...,
        temperature: float | None = ...,
        filter: dict[str, Any] | None = ...,
        stream: Literal[False] = ...,
    ) -> Answer: ...

    @overload
    async def answer(
        self,
        question: str,
        *,
        collection: str,
        model: str | None = ...,
        k: int | None = ...,
        history: Sequence[tuple[str, str]] = ...,
        max_tokens: int | None = ...,
        temperature: float | None = ...,
        filter: dict[str, Any] | None = ...,
        stream: Literal[True],
    ) -> AsyncAnswerStream: ...

    async def answer(
        self,
        question: str,
        *,
        collection: str,
        model: str | None = None,
        k: int | None = None,
        history: Sequence[tuple[str, str]] = (),
        max_tokens: int | None = None,
        temperature: float | None = None,
        filter: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> Answer | AsyncAnswerStream:
        """A grounded answer from ``collection``, citing its sources as [n].

        ``stream=True``: an ``AsyncAnswerStream`` that yields ``str`` pieces, then the ``Answer``.
        ``history``: earlier (question, answer) turns, for a follow-up question.
        """
        body = answer_body(
            question,
            collection=collection,
            model=model,
            k=k,
            history=history,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=stream,
            filter=filter,
        )
        if stream:
            return AsyncAnswerStream(await self._t.open(stream_call(body)), body)
        return await self._t.call(answer_call(body))

    async def usage(
        self, by: calls.UsageGroup = "model", *, since: str | date | datetime | None = None
    ) -> list[UsageRow]:
        """Requests, tokens, spend and cache hits per key, tenant or model (non-admins: their tenant)."""
        return await self._t.call(calls.usage(by, since))

    def openai(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` client for this server and key (needs the ``openai`` package)."""
        module = openai_module()
        client: openai.AsyncOpenAI = module.AsyncOpenAI(
            base_url=self.base_url + "/v1", api_key=self._t.api_key or "none", **kwargs
        )
        return client

    async def close(self) -> None:
        await self._t.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()
