"""The Python SDK (``lamina.client``) against the real session server: sync and async, errors, admin."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import lamina
from lamina.client import (
    Answer,
    APIConnectionError,
    APIStreamError,
    AsyncJob,
    AsyncLamina,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Job,
    Lamina,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from lamina.testing.aio import run as run_async
from lamina.testing.server import free_port
from tests.conftest import DOCS
from tests.shared import RunningServer

SAMPLES = Path(lamina.__file__).parent / "samples"
QUESTION = "What happens if an ingestion is interrupted?"
STUB = "stub"  # the stub upstream answers at once: enough for citations (Lamina quotes the sources)


def _client(served: RunningServer, key: str = "alice") -> Lamina:
    return Lamina(
        served.root, served.keys[key], max_retries=0, http_client=served.server.http_client(timeout=120)
    )


@pytest.fixture(scope="module")
def client(served: RunningServer) -> Iterator[Lamina]:
    with _client(served) as c:
        yield c


@pytest.fixture(scope="module")
def uploaded(client: Lamina) -> dict[str, object]:
    """The bundled samples (a folder path) and a real PDF (bytes), uploaded and waited on."""
    client.collections.create("sdk")
    seen: list[Job] = []
    job = client.documents.upload("sdk", [SAMPLES, ("test.pdf", (DOCS / "test.pdf").read_bytes())], urls=[])
    final = job.wait(seen.append, timeout=180)
    return {"job": job, "final": final, "seen": seen}


def test_health_and_ready(client: Lamina) -> None:
    assert client.health().ok and client.health().version == lamina.__version__
    assert client.ready().ok


def test_upload_waits_with_per_file_progress(uploaded: dict[str, object]) -> None:
    job, final, seen = uploaded["job"], uploaded["final"], uploaded["seen"]
    assert isinstance(job, Job) and isinstance(final, Job) and isinstance(seen, list)
    names = {p.name for p in SAMPLES.iterdir() if p.is_file()} | {"test.pdf"}
    assert {f.name for f in job.files} == names and job.state in ("queued", "running")
    assert final.state == "completed" and final.finished and not final.failed_files
    assert {f.state for f in final.files} == {"done"} and final.report
    assert seen[-1] == final and all(isinstance(j, Job) for j in seen)
    states = {f.state for j in seen for f in j.files}
    assert states & {"queued", "extracting", "embedding"}, states  # progress before the end
    moves = [(j.state, [(f.name, f.state) for f in j.files]) for j in seen]
    assert all(a != b for a, b in itertools.pairwise(moves))  # each change reported once


def test_documents_and_collections(client: Lamina, uploaded: dict[str, object]) -> None:
    docs = client.documents.list("sdk")
    assert {d.source for d in docs} == {p.name for p in SAMPLES.iterdir() if p.is_file()} | {"test.pdf"}
    pdf = next(d for d in docs if d.source == "test.pdf")
    assert pdf.chunks > 0 and pdf.format and pdf.content_url
    assert client.documents.content("sdk", pdf.id) == (DOCS / "test.pdf").read_bytes()
    info = next(c for c in client.collections.list() if c.name == "sdk")
    assert info.tenant == "a" and info.documents == len(docs) and info.chunks > 0


def test_search_hits_are_typed(client: Lamina, uploaded: dict[str, object]) -> None:
    hits = client.search(QUESTION, collection="sdk", k=3)
    assert len(hits) == 3 and hits[0].mode == "hybrid"
    top = hits[0]
    assert top.source.endswith("ingestion-faq.html") and "interrupted" in " ".join(top.headings)
    assert top.score > 0 and {"dense", "bm25"} <= set(top.scores) and top.text
    bm25 = client.search("agents divergent thinking factuality", collection="sdk", mode="bm25", k=2)
    assert bm25[0].mode == "bm25" and bm25[0].source.endswith("test.pdf") and bm25[0].page is not None
    only = client.search("retrieval", collection="sdk", source="*.txt")
    assert only and all(h.source.endswith(".txt") for h in only)


def test_answer_with_citations(client: Lamina, uploaded: dict[str, object]) -> None:
    answer = client.answer(QUESTION, collection="sdk", model=STUB)
    assert isinstance(answer, Answer) and answer.text and answer.grounded
    assert answer.model == STUB and answer.collection == "sdk" and answer.finish_reason == "stop"
    assert answer.citations and answer.usage.total_tokens > 0
    for c in answer.citations:
        assert f"[{c.n}]" in answer.text and c.url and c.document_id and c.chunk_id
    assert answer.citations[0].source == "ingestion-faq.html"
    nothing = client.answer(
        "What is the boiling point of liquid nitrogen at sea level?", collection="sdk", model=STUB
    )
    assert not nothing.grounded and nothing.citations == []


def test_streamed_answer_yields_text_then_the_answer(client: Lamina, uploaded: dict[str, object]) -> None:
    whole = client.answer(QUESTION, collection="sdk", model=STUB)
    items = list(client.answer(QUESTION, collection="sdk", model=STUB, stream=True))
    *pieces, last = items
    assert pieces and all(isinstance(p, str) for p in pieces) and isinstance(last, Answer)
    assert "".join(p for p in pieces if isinstance(p, str)) == last.text == whole.text
    assert last.citations == whole.citations and last.usage.total_tokens > 0
    stream = client.answer(QUESTION, collection="sdk", model=STUB, stream=True)
    assert "".join(stream.text()) == whole.text
    assert stream.answer is not None and stream.answer.citations == whole.citations


def test_answer_from_the_real_model(client: Lamina, uploaded: dict[str, object]) -> None:
    """No model: the collection's rag:NAME model (the local default), kept short."""
    answer = client.answer(QUESTION, collection="sdk", max_tokens=24, temperature=0)
    assert answer.model == "gemma-3-270m" and answer.text and answer.citations


def test_errors_map_to_exceptions(served: RunningServer, client: Lamina, uploaded: dict[str, object]) -> None:
    job = uploaded["final"]
    assert isinstance(job, Job)
    wrong = Lamina(served.root, "lam_not-a-key", max_retries=0, http_client=served.server.http_client())
    with wrong, pytest.raises(AuthenticationError) as auth:
        wrong.collections.list()
    assert auth.value.status == 401 and auth.value.code == "invalid_api_key"
    assert auth.value.request_id and auth.value.request_id.startswith("req_")
    with pytest.raises(NotFoundError) as missing:
        client.search("x", collection="no-such-collection")
    assert missing.value.status == 404 and missing.value.type == "not_found_error"
    with pytest.raises(NotFoundError):
        client.answer(QUESTION, collection="no-such-collection", model=STUB)
    with pytest.raises(NotFoundError):
        client.answer(QUESTION, collection="no-such-collection", model=STUB, stream=True)
    with _client(served, "bob") as bob:  # another tenant's collection does not exist for bob
        with pytest.raises(NotFoundError):
            bob.documents.list("sdk")
        with pytest.raises(NotFoundError):
            bob.answer(QUESTION, collection="sdk", model=STUB)
        with pytest.raises(NotFoundError):
            bob.jobs.get(job.id)
    with pytest.raises(PermissionDeniedError) as denied:
        client.keys.list()
    assert denied.value.code == "admin_only"
    with pytest.raises(ConflictError):
        client.collections.create("sdk")
    with pytest.raises(BadRequestError) as bad:
        client.search("x", collection="sdk", k=0)
    assert bad.value.param == "k"
    with pytest.raises(BadRequestError) as not_http:
        client.documents.upload("sdk", urls=["ftp://example.com/x"])
    assert not_http.value.param == "urls"
    with pytest.raises(ConflictError):
        client.jobs.cancel(job.id)  # it has ended
    nowhere = Lamina(f"http://127.0.0.1:{free_port()}", "k", max_retries=0)
    with nowhere, pytest.raises(APIConnectionError):
        nowhere.health()


def test_jobs(client: Lamina, uploaded: dict[str, object]) -> None:
    final = uploaded["final"]
    assert isinstance(final, Job)
    assert final.id in {j.id for j in client.jobs.list()}
    assert client.jobs.get(final.id) == final.refresh()
    assert client.jobs.wait(final.id).state == "completed"
    with pytest.raises(ConflictError):
        final.resume()  # only interrupted, cancelled or failed jobs resume


def test_admin_keys_and_usage(served: RunningServer, uploaded: dict[str, object]) -> None:
    with _client(served, "admin") as admin:
        # a budget far below one answer's worst case: refused before the model runs, never retried
        made = admin.keys.create("sdk-limited", tenant="a", rpm=100, budget_usd=1e-6, budget_period="day")
        assert made.key.startswith("lam_") and made.prefix and made.tenant == "a" and not made.admin
        listed = {k.name: k for k in admin.keys.list()}
        assert "key" not in listed["sdk-limited"].model_dump()
        limits = listed["sdk-limited"].limits
        assert limits is not None and limits.rpm == 100 and limits.budget_period == "day"
        limited = Lamina(served.root, made.key, max_retries=3, http_client=served.server.http_client())
        assert [d.source for d in limited.documents.list("sdk")]  # tenant a's collections
        with pytest.raises(RateLimitError) as limit:
            limited.answer(QUESTION, collection="sdk", model=STUB)
        assert limit.value.status == 429 and limit.value.limit == "budget_exceeded"
        assert limit.value.retry_after is not None and 0 < limit.value.retry_after <= 86_400
        admin.keys.revoke("sdk-limited")
        with pytest.raises(AuthenticationError):
            limited.collections.list()
        with pytest.raises(NotFoundError):
            admin.keys.revoke("sdk-limited")
        limited.close()
        by_key = {row.group: row for row in admin.usage(by="key")}
        assert by_key["alice"].requests > 0 and by_key["sdk-limited"].requests >= 2
        assert by_key["sdk-limited"].errors >= 1
        assert admin.usage(by="model", since="2000-01-01")
        assert admin.usage(by="tenant", since="2999-01-01") == []
        assert any(c.name == "sdk" and c.tenant == "a" for c in admin.collections.list())
        assert [c.name for c in admin.collections.list(tenant="a") if c.name == "sdk"] == ["sdk"]


def test_openai_client(client: Lamina, uploaded: dict[str, object], served: RunningServer) -> None:
    oai = client.openai(max_retries=0, http_client=served.server.http_client())
    assert "rag:sdk" in {m.id for m in oai.models.list().data}
    r = oai.chat.completions.create(
        model=STUB, messages=[{"role": "user", "content": QUESTION}], extra_body={"collection": "sdk"}
    )
    assert (r.choices[0].message.model_extra or {})["citations"]


def test_async_client(served: RunningServer) -> None:
    async def run() -> None:
        async with AsyncLamina(
            served.root, served.keys["alice"], max_retries=0, http_client=served.server.async_client()
        ) as client:
            assert (await client.health()).ok
            await client.collections.create("sdk-async")
            seen: list[str] = []

            async def progress(job: AsyncJob) -> None:
                seen.append(job.state)

            note = b"# Tidal power\n\nTidal barrages in the Rance estuary have made electricity since 1966.\n"
            job = await client.documents.upload(
                "sdk-async", [("tidal.md", note), SAMPLES / "retrieval-modes.txt"]
            )
            final = await job.wait(progress, timeout=120)
            assert final.state == "completed" and seen[-1] == "completed" and isinstance(final, AsyncJob)
            hits = await client.search("Rance estuary", collection="sdk-async", k=1)
            assert hits[0].source.endswith("tidal.md")
            answer = await client.answer(
                "Since when does the Rance make electricity?", collection="sdk-async", model=STUB
            )
            assert answer.citations and answer.citations[0].source == "tidal.md"
            stream = await client.answer(
                "Since when does the Rance make electricity?", collection="sdk-async", model=STUB, stream=True
            )
            items = [item async for item in stream]
            assert isinstance(items[-1], Answer) and items[-1].text == answer.text
            assert "".join(i for i in items[:-1] if isinstance(i, str)) == answer.text
            docs = await client.documents.list("sdk-async")
            tidal = next(d for d in docs if d.source == "tidal.md")
            await client.documents.delete("sdk-async", tidal.id)
            assert {d.source for d in await client.documents.list("sdk-async")} == {"retrieval-modes.txt"}
            with pytest.raises(NotFoundError):
                await client.collections.delete("no-such-collection")
            await client.collections.delete("sdk-async")
            assert "sdk-async" not in {c.name for c in await client.collections.list()}
            with pytest.raises(PermissionDeniedError):
                await client.keys.create("nope")

    run_async(run())


# without a server: retries and stream errors ----------------------------------------------------------
def _mock(handler: httpx.MockTransport) -> Lamina:
    return Lamina(
        "http://lamina.test/v1", "lam_x", max_retries=2, http_client=httpx.Client(transport=handler)
    )


def test_busy_model_is_retried_but_budgets_are_not() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        assert request.headers["authorization"] == "Bearer lam_x"
        if len(calls) == 1:
            body = {
                "error": {"message": "busy", "type": "rate_limit_error", "param": None, "code": "model_busy"}
            }
            return httpx.Response(429, json=body, headers={"Retry-After": "0"})
        if request.url.path == "/v1/keys":
            body = {"error": {"message": "over", "type": "budget_exceeded", "code": "budget_exceeded"}}
            return httpx.Response(429, json=body, headers={"x-request-id": "req_1"})
        return httpx.Response(200, json={"object": "list", "data": []})

    with _mock(httpx.MockTransport(handler)) as client:
        assert client.collections.list() == [] and calls == ["/v1/collections"] * 2
        with pytest.raises(RateLimitError) as exc:
            client.keys.list()
    assert exc.value.limit == "budget_exceeded" and exc.value.retry_after is None
    assert exc.value.request_id == "req_1" and len(calls) == 3


def test_a_stream_that_breaks_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        chunk = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "Half"}}]}
        error = {"error": {"message": "model failed", "type": "upstream_error", "code": "stream_interrupted"}}
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(error)}\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    with _mock(httpx.MockTransport(handler)) as client:
        stream = client.answer("q", collection="c", stream=True)
        pieces: list[object] = []
        with pytest.raises(APIStreamError) as exc:
            pieces.extend(stream)
    assert pieces == ["Half"] and exc.value.code == "stream_interrupted"
